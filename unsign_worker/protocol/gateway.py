"""The HTTPS client towards the gateway: the only module that imports ``requests``.

- One ``requests.Session`` with a sized connection pool, shared safely by threads and gevent
  greenlets: no cookies, nothing from the environment, per-exchange state in a context variable.
- Form POST to ``<gateway>?_input_charset=<charset>``, the body encoded in that charset; nothing
  else goes in the URL, so logged URLs never carry parameters.
- Connect and read timeouts, plus a total deadline for the exchange: the read timeout bounds
  each socket read only, so an answer dripping one byte per second would otherwise hold a worker
  for hours (see :mod:`unsign_worker.protocol._exchange`).
- TLS verification always on; a CA bundle may replace the trust store, nothing turns it off.
  DNS is resolved on each new connection (no cache, no pinned IP), and a kept-alive connection
  is closed once ``max_connection_age_seconds`` old, so a change of the gateway's address is
  followed within that time.
- The body is read up to ``max_response_bytes`` and no further; ``Accept-Encoding: identity`` is
  asked for and a compressed answer refused, so no decompression bomb is ever expanded.
- Failures become :class:`TransportError`; ``may_have_reached`` is False only when no byte of the
  request was written (refused, DNS, connect timeout, TLS handshake or certificate); ``network``
  is True when no answer came at all (every failure but a full local connection pool), which
  tells a worker that the path to the gateway may be cut (:mod:`unsign_worker.worker.reachability`).
"""

from __future__ import annotations

import http.client
import ssl
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from http.cookiejar import DefaultCookiePolicy
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus, urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import EmptyPoolError, ReadTimeoutError
from urllib3.exceptions import HTTPError as Urllib3Error

from unsign_worker.protocol._exchange import CURRENT, Exchange, pool_classes
from unsign_worker.protocol.exceptions import (
    ConfigError,
    FieldError,
    TransportError,
    ValidationError,
)
from unsign_worker.protocol.hosts import is_loopback_host
from unsign_worker.protocol.tls_errors import describe_tls_failure

USER_AGENT = "unsign-worker/0.1"
#: Bytes asked of the socket per read of the answer's body.
READ_CHUNK_BYTES = 16 * 1024


@dataclass(frozen=True)
class RawAnswer:
    """What came back: HTTP status, body bytes, and how long the exchange took (seconds)."""

    status: int
    body: bytes
    elapsed_seconds: float


class GatewayClient:
    """Sends signed parameter sets to the gateway and returns the raw answer.

    Parameters:
        gateway_url: the gateway, e.g. ``https://mapi.alipay.com/gateway.do`` (checked by
            :func:`unsign_worker.settings.check_gateway_url`, not here).
        connect_timeout_seconds: TCP connect (and TLS handshake) timeout.
        read_timeout_seconds: longest wait for any single read of the answer.
        pool_size: most connections open towards the gateway at once (kept alive between
            requests); a request beyond them waits for a free one. Match the concurrency.
        max_response_bytes: largest answer body accepted.
        ca_bundle: a PEM file or a directory of CA certificates to trust instead of the default
            bundle; None or "" keeps the default. Verification itself cannot be turned off.
        total_timeout_seconds: deadline for the whole exchange, from the call to the last byte;
            defaults to connect plus read timeout.
        max_connection_age_seconds: a kept-alive connection this old is closed before its
            next use (the name is resolved again); 0 keeps connections as long as they live.

    Raises:
        ConfigError: a timeout or size is not positive, or the CA bundle cannot be loaded.
    """

    def __init__(self, *, gateway_url: str, connect_timeout_seconds: float,
                 read_timeout_seconds: float, pool_size: int, max_response_bytes: int,
                 ca_bundle: str | None = None,
                 total_timeout_seconds: float | None = None,
                 max_connection_age_seconds: float = 0.0) -> None:
        total = (connect_timeout_seconds + read_timeout_seconds
                 if total_timeout_seconds is None else total_timeout_seconds)
        for name, value in (("connect_timeout_seconds", connect_timeout_seconds),
                            ("read_timeout_seconds", read_timeout_seconds),
                            ("total_timeout_seconds", total), ("pool_size", pool_size),
                            ("max_response_bytes", max_response_bytes)):
            if not value > 0:
                raise ConfigError(f"gateway client: {name} must be positive, not {value!r}")
        if not max_connection_age_seconds >= 0:
            raise ConfigError("gateway client: max_connection_age_seconds must not be negative")
        self.gateway_url = gateway_url
        self._urls: dict[str, str] = {}
        self._timeout = (connect_timeout_seconds, read_timeout_seconds)
        self._total_seconds = float(total)
        self._max_bytes = int(max_response_bytes)
        self._verify: str | bool = check_ca_bundle(ca_bundle)
        self._session = _make_session(int(pool_size), self._verify,
                                      float(max_connection_age_seconds))
        self._in_flight: set[Exchange] = set()
        self._in_flight_lock = threading.Lock()

    @property
    def trusted_channel(self) -> bool:
        """True when an answer can only come from the configured gateway: ``https://`` (the
        certificate and host name are always verified, redirects never followed), or plain
        ``http://`` to a loopback host (the sandbox: the answering process is on this machine).
        Unsigned ``query_customer_protocol`` answers are believed only then (docs/security.md).
        """
        parts = urlsplit(self.gateway_url)
        if parts.scheme == "https":
            return True
        return parts.scheme == "http" and is_loopback_host(parts.hostname or "")

    def url_for(self, charset: str) -> str:
        """The gateway URL with only ``_input_charset`` in its query string."""
        url = self._urls.get(charset)
        if url is None:
            parts = urlsplit(self.gateway_url)
            url = urlunsplit((parts.scheme, parts.netloc, parts.path,
                              f"_input_charset={quote_plus(charset)}", ""))
            self._urls[charset] = url
        return url

    def post(self, params: Mapping[str, str], *, charset: str) -> RawAnswer:
        """POST the signed ``params`` as a form encoded in ``charset``; return a 200 answer.

        Raises:
            ValidationError: a parameter cannot be encoded in ``charset``.
            TransportError: refused, reset, timeout, total deadline, HTTP status other than 200,
                truncated, compressed or oversized body.
        """
        body = encode_form(params, charset)
        headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity",
                   "Content-Type": f"application/x-www-form-urlencoded; charset={charset}"}
        started = time.monotonic()
        exchange = Exchange(deadline=started + self._total_seconds)
        token = CURRENT.set(exchange)
        with self._in_flight_lock:
            self._in_flight.add(exchange)
        try:
            return self._send(exchange, body, headers, charset, started)
        finally:
            with self._in_flight_lock:
                self._in_flight.discard(exchange)
            CURRENT.reset(token)

    def abort_in_flight(self) -> int:
        """Give up on every exchange in progress (called from another thread or greenlet, when
        the gateway is known unreachable from here): each fails at once with a network
        :class:`TransportError` instead of waiting out its timeout. Returns how many."""
        with self._in_flight_lock:
            exchanges = list(self._in_flight)
        for exchange in exchanges:
            exchange.abort()
        return len(exchanges)

    def _send(self, exchange: Exchange, body: bytes, headers: dict[str, str],
                  charset: str, started: float) -> RawAnswer:
        failure: TransportError | None = None
        try:
            # A request prepared here and handed to Session.send: the session's adapter, pool
            # and TLS settings apply, without Session.request's per-call merging of
            # environment and session settings, which costs more CPU than the rest of a job.
            prepared = requests.PreparedRequest()
            prepared.prepare(method="POST", url=self.url_for(charset), headers=headers,
                             data=body)
            resp = self._session.send(prepared, timeout=self._timeout, verify=self._verify,
                                      stream=True, allow_redirects=False, proxies={},
                                      cert=None)
        except (requests.exceptions.RequestException, Urllib3Error) as exc:
            # (urllib3's EmptyPoolError, no free connection by the deadline, is not wrapped)
            failure = self._failure(exc, exchange, phase="sending the request")
        if failure is not None:  # raised here, outside the handler: no chained context
            raise failure  # (the request object, with its signed body, stays out of tracebacks)
        try:
            status = resp.status_code
            if status != 200:
                kind = "" if status >= 500 else "unexpected "
                raise TransportError(f"{kind}HTTP {status} from the gateway",
                                     may_have_reached=True, http_status=status)
            data = self._read_capped(resp, exchange)
        finally:
            resp.close()
        return RawAnswer(status, data, time.monotonic() - started)

    def _read_capped(self, resp: requests.Response, exchange: Exchange) -> bytes:
        """Read the body, stopping one byte past the cap so a huge answer costs nothing."""
        encoding = resp.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            raise TransportError(f"answer with Content-Encoding {encoding[:20]!r} refused",
                                 may_have_reached=True, http_status=resp.status_code)
        declared = resp.headers.get("Content-Length", "").strip()
        if declared.isdigit() and int(declared) > self._max_bytes:
            raise TransportError(f"answer of {declared} bytes exceeds {self._max_bytes}",
                                 may_have_reached=True, http_status=resp.status_code)
        chunks: list[bytes] = []
        size = 0
        failure: TransportError | None = None
        try:
            while chunk := resp.raw.read(min(READ_CHUNK_BYTES, self._max_bytes + 1 - size),
                                         decode_content=False):
                size += len(chunk)
                if size > self._max_bytes:
                    raise TransportError(f"answer exceeds {self._max_bytes} bytes",
                                         may_have_reached=True, http_status=resp.status_code)
                chunks.append(chunk)
        except (Urllib3Error, http.client.HTTPException, OSError, ValueError) as exc:
            failure = self._failure(exc, exchange, phase="reading the answer")
        if failure is not None:
            failure.http_status = resp.status_code
            raise failure
        if exchange.expired() or exchange.aborted:  # a close-delimited body cut short by the
            # deadline or an abort looks complete
            raise TransportError(self._fault_reason(None, exchange, "reading the answer"),
                                 may_have_reached=True, http_status=resp.status_code,
                                 network=exchange.aborted)
        return b"".join(chunks)

    def _failure(self, exc: BaseException, exchange: Exchange, *,
                 phase: str) -> TransportError:
        """Classify a requests/urllib3/socket failure; never keeps the exception itself.
        Every failure but a full local pool is a network fault (no answer came)."""
        if isinstance(exc, EmptyPoolError) and not exchange.expired():
            return TransportError("no free connection to the gateway", may_have_reached=False)
        return TransportError(self._fault_reason(exc, exchange, phase),
                              may_have_reached=exchange.sent, network=True)

    def _fault_reason(self, exc: BaseException | None, exchange: Exchange, phase: str) -> str:
        if exchange.aborted:
            return f"given up while {phase}: the gateway is unreachable from this worker"
        if exchange.expired():
            return self._late()
        if isinstance(exc, requests.exceptions.ConnectTimeout):
            return f"connect timeout after {self._timeout[0]:g}s"
        tls = describe_tls_failure(exc, in_handshake=not exchange.sent)
        if tls is not None:
            return f"TLS failure: {tls}"
        if isinstance(exc, requests.exceptions.SSLError):
            return f"TLS failure: {_reason(exc)}"
        if _is_read_timeout(exc):
            return f"read timeout while {phase}"
        what = "connection failed" if not exchange.sent else f"connection broken while {phase}"
        return f"{what}: {_reason(exc)}"

    def _late(self) -> str:
        return f"no complete answer within the total deadline of {self._total_seconds:g}s"

    def close(self) -> None:
        """Close every pooled connection; the client must not be used afterwards."""
        self._session.close()

    def __repr__(self) -> str:
        return (f"GatewayClient(gateway_url={self.gateway_url!r}, timeout={self._timeout}, "
                f"total_timeout_seconds={self._total_seconds:g}, "
                f"max_response_bytes={self._max_bytes})")


def encode_form(params: Mapping[str, str], charset: str) -> bytes:
    """``application/x-www-form-urlencoded`` body with names and values encoded in ``charset``.

    Raises:
        ValidationError: a name or value has characters ``charset`` cannot encode.
    """
    pairs = []
    for name, value in params.items():
        try:
            pairs.append(f"{quote_plus(name, encoding=charset)}="
                         f"{quote_plus(value, encoding=charset)}")
        except UnicodeEncodeError:
            raise ValidationError([FieldError(name, "charset",
                                              f"cannot be encoded in {charset}")]) from None
    return "&".join(pairs).encode("ascii")


def check_ca_bundle(ca_bundle: str | None) -> str | bool:
    """``True`` (default trust store) or the path of a bundle that really loads (a PEM file or
    a directory of CA certificates). ``check-config`` applies the same rule.

    Raises:
        ConfigError: anything else, ``False`` and words like ``none`` included.
    """
    if ca_bundle is None or (isinstance(ca_bundle, str) and not ca_bundle.strip()):
        return True
    if not isinstance(ca_bundle, str):  # e.g. False: never a way to switch verification off
        raise ConfigError(f"ALIPAY_CA_BUNDLE: expected a path, not {type(ca_bundle).__name__}")
    path = Path(ca_bundle)
    try:
        context = ssl.create_default_context()
        if path.is_dir():
            context.load_verify_locations(capath=str(path))
        else:
            context.load_verify_locations(cafile=str(path))
    except (OSError, ssl.SSLError):
        raise ConfigError(f"ALIPAY_CA_BUNDLE: {ca_bundle!r} is not a readable PEM file or "
                          "directory of CA certificates") from None
    return str(path)


def trust_store(ca_bundle: str | None) -> str:
    """The CA file or directory a client of ``ca_bundle`` verifies the gateway against:
    ``ALIPAY_CA_BUNDLE`` when set, else the public CAs requests uses (certifi's bundle), not the
    operating system's store. ``check-config --probe`` verifies against the same."""
    return ca_bundle if ca_bundle and ca_bundle.strip() else requests.certs.where()


def _make_session(pool_size: int, verify: str | bool,
                  max_connection_age_seconds: float) -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # no proxy, CA bundle or netrc taken from the environment
    session.verify = verify
    session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))  # stateless
    session.headers["User-Agent"] = USER_AGENT
    # pool_block: never more than pool_size connections; a request beyond them waits for a
    # free one (by its deadline) instead of opening a TLS connection thrown away after one use
    adapter = _ExchangeAdapter(pool_connections=4, pool_maxsize=pool_size, pool_block=True,
                               max_retries=0,
                               max_connection_age_seconds=max_connection_age_seconds)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


class _ExchangeAdapter(HTTPAdapter):
    """An adapter whose pools use the deadline- and send-aware connections of
    :mod:`unsign_worker.protocol._exchange`, closed before reuse at their maximum age."""

    def __init__(self, *, max_connection_age_seconds: float, **kwargs: Any) -> None:
        self._pool_classes = pool_classes(max_connection_age_seconds)
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = self._pool_classes


def _is_read_timeout(exc: BaseException) -> bool:
    return isinstance(exc, (requests.exceptions.ReadTimeout, ReadTimeoutError, TimeoutError))


def _reason(exc: BaseException) -> str:
    """A short reason without URLs or bodies (they could carry parameters)."""
    text = repr(exc)
    for marker in ("Connection refused", "Connection reset", "Remote end closed",
                   "certificate verify failed", "IncompleteRead", "InvalidChunkLength",
                   "Broken pipe", "timed out", "Name or service not known",
                   "Failed to resolve", "No route to host", "WRONG_VERSION_NUMBER",
                   "Connection aborted"):
        if marker in text:
            return marker
    return type(exc).__name__
