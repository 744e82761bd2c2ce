"""The HTTPS client towards the gateway: the only module that imports ``requests``.

- One ``requests.Session`` per process with a sized connection pool (connections reused).
- Form POST to ``<gateway>?_input_charset=<charset>``, the body encoded in that charset, as the
  usage rules require; separate connect and read timeouts.
- TLS verification is always on (a custom CA bundle may be given); the host is resolved through
  DNS on each new connection (urllib3 keeps no DNS cache, and no IP is ever pinned).
- Transport failures become :class:`TransportError`, which records whether the request may have
  reached the gateway: a refused or failed connect did not; a read timeout, a reset after the
  request was sent, a 5xx, or a truncated or oversized body may have.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ProtocolError, ReadTimeoutError

from unsign_worker.exceptions import TransportError

USER_AGENT = "unsign-worker/0.1"


@dataclass(frozen=True)
class RawAnswer:
    """What came back: HTTP status, body bytes, and how long it took (seconds)."""

    status: int
    body: bytes
    elapsed_seconds: float


class GatewayClient:
    """Sends signed parameter sets to the gateway and returns the raw answer."""

    def __init__(self, *, gateway_url: str, connect_timeout_seconds: float,
                 read_timeout_seconds: float, pool_size: int, max_response_bytes: int,
                 ca_bundle: str | None = None) -> None:
        self.gateway_url = gateway_url
        self._timeout = (connect_timeout_seconds, read_timeout_seconds)
        self._max_bytes = max_response_bytes
        self._verify: bool | str = ca_bundle or True
        self._session = requests.Session()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
        self._session.mount("https://", adapter)
        self._session.mount("http://", adapter)
        self._session.headers["User-Agent"] = USER_AGENT
        self._session.trust_env = False  # no proxy or netrc surprises from the environment

    def url_for(self, charset: str) -> str:
        parts = urlsplit(self.gateway_url)
        query = urlencode({"_input_charset": charset})
        return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))

    def post(self, params: Mapping[str, str], *, charset: str) -> RawAnswer:
        """POST the signed ``params`` as a form encoded in ``charset``.

        Raises:
            TransportError: refused, reset, timeout, HTTP 5xx, truncated or oversized body.
        """
        body = urlencode(dict(params), encoding=charset)
        headers = {"Content-Type": f"application/x-www-form-urlencoded; charset={charset}"}
        try:
            resp = self._session.post(self.url_for(charset), data=body, headers=headers,
                                      timeout=self._timeout, verify=self._verify, stream=True,
                                      allow_redirects=False)
        except requests.exceptions.ConnectTimeout:
            raise TransportError("connect timeout", may_have_reached=False) from None
        except requests.exceptions.SSLError as exc:
            raise TransportError(f"TLS failure: {_reason(exc)}", may_have_reached=False) from None
        except requests.exceptions.ReadTimeout:
            raise TransportError("read timeout after the request was sent",
                                 may_have_reached=True) from None
        except requests.exceptions.ConnectionError as exc:
            raise TransportError(f"connection failed: {_reason(exc)}",
                                 may_have_reached=_may_have_reached(exc)) from None
        try:
            data = self._read_capped(resp)
        finally:
            resp.close()
        if resp.status_code >= 500:
            raise TransportError(f"HTTP {resp.status_code} from the gateway",
                                 may_have_reached=True, http_status=resp.status_code)
        if resp.status_code != 200:
            raise TransportError(f"unexpected HTTP {resp.status_code} from the gateway",
                                 may_have_reached=True, http_status=resp.status_code)
        return RawAnswer(resp.status_code, data, resp.elapsed.total_seconds())

    def _read_capped(self, resp: requests.Response) -> bytes:
        declared = resp.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > self._max_bytes:
            raise TransportError(f"answer of {declared} bytes exceeds {self._max_bytes}",
                                 may_have_reached=True, http_status=resp.status_code)
        chunks: list[bytes] = []
        size = 0
        try:
            for chunk in resp.iter_content(chunk_size=16384):
                size += len(chunk)
                if size > self._max_bytes:
                    raise TransportError(f"answer exceeds {self._max_bytes} bytes",
                                         may_have_reached=True, http_status=resp.status_code)
                chunks.append(chunk)
        except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError,
                ProtocolError) as exc:
            raise TransportError(f"answer truncated: {_reason(exc)}", may_have_reached=True,
                                 http_status=resp.status_code) from None
        except (requests.exceptions.ReadTimeout, ReadTimeoutError):
            raise TransportError("read timeout while receiving the answer",
                                 may_have_reached=True, http_status=resp.status_code) from None
        return b"".join(chunks)

    def close(self) -> None:
        self._session.close()


def _may_have_reached(exc: BaseException) -> bool:
    """A failure to connect means the gateway never saw the request; anything later may."""
    text = repr(exc)
    never = ("NewConnectionError", "Connection refused", "Name or service not known",
             "NameResolutionError", "Failed to resolve", "No route to host")
    return not any(marker in text for marker in never)


def _reason(exc: BaseException) -> str:
    """A short reason without URLs (they could carry parameters)."""
    text = str(exc.args[0]) if exc.args else type(exc).__name__
    for marker in ("Connection refused", "Connection reset", "Remote end closed",
                   "certificate verify failed", "timed out", "Max retries exceeded",
                   "IncompleteRead", "Connection aborted"):
        if marker in text:
            return marker
    return type(exc).__name__
