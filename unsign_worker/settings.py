"""One settings object, built once from the environment and passed down.

Nothing below this module reads ``os.environ``: ``Settings.from_env()`` is called at the edges
(the CLI, the Celery app factory) and the object travels from there. Every default is a named
constant with its unit in the name. Secrets are held in :class:`Secret`, whose ``repr`` and
``str`` never show the value.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from urllib.parse import urlsplit

from unsign_worker.protocol.exceptions import ConfigError
from unsign_worker.protocol.hosts import is_ip_literal, is_loopback_host, redact_url
from unsign_worker.protocol.param_rules import CHARSETS
from unsign_worker.store.broker import check_store_url
from unsign_worker.store.keys import AUDIT_MAXLEN, DEFAULT_KEY_PREFIX

#: The production gateway of the MAPI interface.
DEFAULT_GATEWAY_URL = "https://mapi.alipay.com/gateway.do"
#: Gateway hosts allowed outside sandbox mode without ALIPAY_GATEWAY_ALLOWED_HOSTS
#: (the rules: "必须使用支付宝的网关").
ALIPAY_GATEWAY_HOSTS = ("mapi.alipay.com",)
#: Default broker and store.
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
#: Sentinel URLs (unsign_worker.store.sentinel): replicas are expected, so UNSIGN_REPLICA_ACKS is 1.
SENTINEL_PREFIXES = ("redis+sentinel://", "rediss+sentinel://")
#: How long a write waits for its replicas (WAIT), milliseconds.
REPLICA_WAIT_MS = 1000
#: Charsets the gateway accepts for ``_input_charset``.
SUPPORTED_CHARSETS = CHARSETS
#: Sign types the gateway accepts.
SUPPORTED_SIGN_TYPES = ("MD5", "RSA", "DSA")

#: TCP connect timeout towards the gateway.
CONNECT_TIMEOUT_SECONDS = 5.0
#: Time allowed for the gateway's answer once the request is sent.
READ_TIMEOUT_SECONDS = 15.0
#: Connections kept per worker process towards the gateway.
HTTP_POOL_SIZE = 100
#: Largest response body accepted from the gateway.
MAX_RESPONSE_BYTES = 64 * 1024
#: A kept-alive gateway connection is closed before its next use once it is this old, so a DNS
#: change of the gateway is followed ("不要设置 DNS cache"); 0 keeps connections for ever.
HTTP_MAX_CONNECTION_AGE_SECONDS = 120.0

#: How long tenacity may keep retrying inside one task before handing the job back to the broker.
INTASK_RETRY_BUDGET_SECONDS = 3.0
#: First in-task backoff step.
INTASK_BACKOFF_BASE_SECONDS = 0.1
#: Largest in-task backoff step.
INTASK_BACKOFF_CAP_SECONDS = 1.0
#: First broker-side (Celery retry) countdown.
RETRY_COUNTDOWN_BASE_SECONDS = 5.0
#: Largest broker-side countdown; must stay well below the visibility timeout.
RETRY_COUNTDOWN_CAP_SECONDS = 300.0
#: After this long since its first attempt a retrying job is dead-lettered as retry_exhausted.
RETRY_DEADLINE_SECONDS = 6 * 3600.0
#: Redis broker visibility timeout: an unacknowledged message is redelivered after this.
VISIBILITY_TIMEOUT_SECONDS = 3600.0
#: An in-flight claim on an agreement expires after this, so a crashed worker blocks nothing.
LEASE_SECONDS = 60.0

#: Halt answers within the breaker window that open the circuit breaker.
BREAKER_THRESHOLD = 3
#: Window in which halt answers are counted.
BREAKER_WINDOW_SECONDS = 60.0
#: After this long an open breaker lets one probe through (half-open).
BREAKER_PROBE_AFTER_SECONDS = 300.0

#: Seconds between two passes of the lease sweeper.
SWEEP_INTERVAL_SECONDS = 5.0
#: Approximate length kept in the events stream.
EVENTS_MAXLEN = 100_000


class Secret:
    """A secret value whose repr and str never show it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """Return the value; call only where it is used (signing)."""
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('********')" if self._value else "Secret('')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __reduce__(self) -> str | tuple[object, ...]:  # never pickled with its value
        raise TypeError("Secret values cannot be pickled")


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def _read_file(path: str, name: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read {path!r}: {exc.strerror}") from None


def check_gateway_url(url: str, *, sandbox: bool,
                      allowed_hosts: tuple[str, ...] = ()) -> None:
    """Raise ConfigError unless the gateway URL is allowed.

    Production: ``https://`` to Alipay's gateway host (``mapi.alipay.com``), or to a host name
    that ``allowed_hosts`` (``ALIPAY_GATEWAY_ALLOWED_HOSTS``) names explicitly, e.g. an egress
    proxy; never an IP literal (the rules forbid pinning Alipay's IPs).
    Sandbox: ``http://`` or ``https://`` on a loopback host only.
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number in range
    except ValueError:
        raise ConfigError(f"ALIPAY_GATEWAY_URL: {url!r} is not a well-formed URL") from None
    if parts.scheme not in ("http", "https") or not host:
        raise ConfigError(f"ALIPAY_GATEWAY_URL: {url!r} is not an http(s) URL")
    if sandbox:
        if not is_loopback_host(host):
            raise ConfigError(
                f"ALIPAY_GATEWAY_URL: sandbox mode only talks to a loopback gateway, not {host!r}"
            )
        return
    if parts.scheme != "https":
        raise ConfigError("ALIPAY_GATEWAY_URL: only https:// is allowed outside sandbox mode")
    if is_ip_literal(host):
        raise ConfigError(
            "ALIPAY_GATEWAY_URL: give the gateway's host name, not an IP literal "
            "(the rules forbid pinning Alipay IPs)"
        )
    name = host.lower().rstrip(".")
    if name in ALIPAY_GATEWAY_HOSTS or name in allowed_hosts:
        return
    raise ConfigError(
        f"ALIPAY_GATEWAY_URL: {host!r} is not Alipay's gateway "
        f"({', '.join(ALIPAY_GATEWAY_HOSTS)}), which the rules require; a host that forwards "
        "to it (an egress proxy) must be named in ALIPAY_GATEWAY_ALLOWED_HOSTS"
    )


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything the worker, CLI and client need, read once."""

    partner: str = ""
    key: Secret = field(default_factory=lambda: Secret(""))
    sign_type: str = "MD5"
    private_key_pem: Secret = field(default_factory=lambda: Secret(""))
    public_key_pem: str = ""
    input_charset: str = "utf-8"
    gateway_url: str = DEFAULT_GATEWAY_URL
    ca_bundle: str | None = None
    #: host names besides Alipay's gateway that ALIPAY_GATEWAY_URL may name (lower case)
    gateway_allowed_hosts: tuple[str, ...] = ()
    sandbox: bool = False
    redis_url: str = DEFAULT_REDIS_URL
    broker_url: str = DEFAULT_REDIS_URL
    key_prefix: str = DEFAULT_KEY_PREFIX
    test_partners: tuple[str, ...] = ()
    success_hook: str = ""
    connect_timeout_seconds: float = CONNECT_TIMEOUT_SECONDS
    read_timeout_seconds: float = READ_TIMEOUT_SECONDS
    http_pool_size: int = HTTP_POOL_SIZE
    max_response_bytes: int = MAX_RESPONSE_BYTES
    http_max_connection_age_seconds: float = HTTP_MAX_CONNECTION_AGE_SECONDS
    intask_retry_budget_seconds: float = INTASK_RETRY_BUDGET_SECONDS
    retry_countdown_base_seconds: float = RETRY_COUNTDOWN_BASE_SECONDS
    retry_countdown_cap_seconds: float = RETRY_COUNTDOWN_CAP_SECONDS
    retry_deadline_seconds: float = RETRY_DEADLINE_SECONDS
    visibility_timeout_seconds: float = VISIBILITY_TIMEOUT_SECONDS
    lease_seconds: float = LEASE_SECONDS
    breaker_threshold: int = BREAKER_THRESHOLD
    breaker_window_seconds: float = BREAKER_WINDOW_SECONDS
    breaker_probe_after_seconds: float = BREAKER_PROBE_AFTER_SECONDS
    audit_maxlen: int = AUDIT_MAXLEN
    sweep_interval_seconds: float = SWEEP_INTERVAL_SECONDS
    #: remote-control commands the workers obey: inspect (Flower's reads) | full
    remote_control: str = "inspect"
    #: replicas that must hold a claim and a success (WAIT) before the gateway is called and
    #: before the hook runs and the message is acknowledged (docs/reliability.md)
    replica_acks: int = 0
    replica_wait_ms: int = REPLICA_WAIT_MS

    def __post_init__(self) -> None:
        check_store_url(self.redis_url, name="UNSIGN_REDIS_URL")
        check_store_url(self.broker_url, name="UNSIGN_BROKER_URL")
        if self.remote_control not in ("inspect", "full"):
            raise ConfigError(f"UNSIGN_REMOTE_CONTROL: {self.remote_control!r} is neither "
                              "'inspect' nor 'full'")
        if self.retry_countdown_cap_seconds + self.lease_seconds >= self.visibility_timeout_seconds:
            raise ConfigError(
                "UNSIGN_VISIBILITY_TIMEOUT: must exceed the longest retry countdown plus the "
                f"lease ({self.retry_countdown_cap_seconds:g}s + {self.lease_seconds:g}s), "
                "or delayed messages are delivered twice"
            )

    def __repr__(self) -> str:
        def shown(name: str) -> str:
            value = getattr(self, name)
            if name in ("redis_url", "broker_url"):
                value = redact_url(value)
            return f"{name}={value!r}"

        return f"Settings({', '.join(shown(f.name) for f in fields(self))})"

    @property
    def is_test_partner(self) -> bool:
        return bool(self.partner) and self.partner in self.test_partners

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, *, load_dotenv: bool = True
    ) -> Settings:
        """Build settings from ``env`` (default: the process environment, plus ``.env``).

        Raises:
            ConfigError: a variable is malformed or a file cannot be read; the message names it.
        """
        if env is None:
            if load_dotenv:
                from dotenv import dotenv_values

                merged = {k: v for k, v in dotenv_values(".env").items() if v is not None}
                merged.update(os.environ)
                env = merged
            else:
                env = dict(os.environ)
        get = env.get

        key = get("ALIPAY_KEY", "")
        if not key and get("ALIPAY_KEY_FILE"):
            key = _read_file(get("ALIPAY_KEY_FILE", ""), "ALIPAY_KEY_FILE")
        private_pem = ""
        if get("ALIPAY_PRIVATE_KEY_FILE"):
            private_pem = _read_file(get("ALIPAY_PRIVATE_KEY_FILE", ""), "ALIPAY_PRIVATE_KEY_FILE")
        public_pem = ""
        if get("ALIPAY_PUBLIC_KEY_FILE"):
            public_pem = _read_file(get("ALIPAY_PUBLIC_KEY_FILE", ""), "ALIPAY_PUBLIC_KEY_FILE")
        redis_url = get("UNSIGN_REDIS_URL") or DEFAULT_REDIS_URL

        def num(name: str, default: float) -> float:
            raw = get(name)
            if raw is None or raw == "":
                return default
            try:
                value = float(raw)
            except ValueError:
                raise ConfigError(f"{name}: {raw!r} is not a number") from None
            if value < 0:
                raise ConfigError(f"{name}: must not be negative")
            return value

        return cls(
            partner=(get("ALIPAY_PARTNER") or "").strip(),
            key=Secret(key.strip()),
            sign_type=(get("ALIPAY_SIGN_TYPE") or "MD5").strip(),
            private_key_pem=Secret(private_pem),
            public_key_pem=public_pem,
            input_charset=(get("ALIPAY_INPUT_CHARSET") or "utf-8").strip().lower(),
            gateway_url=(get("ALIPAY_GATEWAY_URL") or DEFAULT_GATEWAY_URL).strip(),
            ca_bundle=get("ALIPAY_CA_BUNDLE") or None,
            gateway_allowed_hosts=tuple(
                h.strip().lower().rstrip(".")
                for h in (get("ALIPAY_GATEWAY_ALLOWED_HOSTS") or "").split(",") if h.strip()
            ),
            sandbox=_truthy(get("UNSIGN_SANDBOX")),
            redis_url=redis_url,
            broker_url=get("UNSIGN_BROKER_URL") or redis_url,
            key_prefix=get("UNSIGN_KEY_PREFIX") or DEFAULT_KEY_PREFIX,
            test_partners=tuple(
                p.strip() for p in (get("ALIPAY_TEST_PARTNERS") or "").split(",") if p.strip()
            ),
            success_hook=(get("UNSIGN_SUCCESS_HOOK") or "").strip(),
            connect_timeout_seconds=num("UNSIGN_CONNECT_TIMEOUT", CONNECT_TIMEOUT_SECONDS),
            read_timeout_seconds=num("UNSIGN_READ_TIMEOUT", READ_TIMEOUT_SECONDS),
            http_pool_size=int(num("UNSIGN_HTTP_POOL_SIZE", HTTP_POOL_SIZE)),
            http_max_connection_age_seconds=num("UNSIGN_HTTP_MAX_CONNECTION_AGE",
                                                HTTP_MAX_CONNECTION_AGE_SECONDS),
            intask_retry_budget_seconds=num(
                "UNSIGN_INTASK_RETRY_BUDGET", INTASK_RETRY_BUDGET_SECONDS
            ),
            retry_countdown_base_seconds=num(
                "UNSIGN_RETRY_COUNTDOWN_BASE", RETRY_COUNTDOWN_BASE_SECONDS
            ),
            retry_countdown_cap_seconds=num(
                "UNSIGN_RETRY_COUNTDOWN_CAP", RETRY_COUNTDOWN_CAP_SECONDS
            ),
            retry_deadline_seconds=num("UNSIGN_RETRY_DEADLINE", RETRY_DEADLINE_SECONDS),
            visibility_timeout_seconds=num(
                "UNSIGN_VISIBILITY_TIMEOUT", VISIBILITY_TIMEOUT_SECONDS
            ),
            lease_seconds=num("UNSIGN_LEASE", LEASE_SECONDS),
            breaker_threshold=int(num("UNSIGN_BREAKER_THRESHOLD", BREAKER_THRESHOLD)),
            breaker_window_seconds=num("UNSIGN_BREAKER_WINDOW", BREAKER_WINDOW_SECONDS),
            breaker_probe_after_seconds=num(
                "UNSIGN_BREAKER_PROBE_AFTER", BREAKER_PROBE_AFTER_SECONDS
            ),
            audit_maxlen=int(num("UNSIGN_AUDIT_MAXLEN", AUDIT_MAXLEN)),
            sweep_interval_seconds=num("UNSIGN_SWEEP_INTERVAL", SWEEP_INTERVAL_SECONDS),
            remote_control=(get("UNSIGN_REMOTE_CONTROL") or "inspect").strip().lower(),
            replica_acks=int(num("UNSIGN_REPLICA_ACKS",
                                 1 if redis_url.lower().startswith(SENTINEL_PREFIXES) else 0)),
            replica_wait_ms=int(num("UNSIGN_REPLICA_WAIT_MS", REPLICA_WAIT_MS)),
        )
