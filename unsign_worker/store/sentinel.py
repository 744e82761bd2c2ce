"""Redis high availability: Sentinel URLs for the state store and the broker.

One convention for both ``UNSIGN_REDIS_URL`` and ``UNSIGN_BROKER_URL``::

    redis+sentinel://[[user]:password@]host1:26379,host2:26379,host3:26379/<master>[/<db>]
    rediss+sentinel://...   (TLS to the sentinels and to the master, certificate verified;
                             ?ssl_ca_certs=/path/ca.pem names a private CA)

The password (and user) authenticate to the master and its replicas, and to the sentinels too
(``requirepass`` on the sentinels), unless ``?sentinel_auth=none`` says the sentinels take none.
The state store is redis-py's ``Sentinel(...).master_for(<master>)``, which asks the sentinels
for the current master on every new connection, so a failover is followed by reconnecting; the
broker is kombu's ``sentinel://`` transport with ``master_name``, built as the ``;``-separated
list kombu expects (never ending with ``;``: Celery would then add a localhost entry).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

import redis
from redis.sentinel import Sentinel

from unsign_worker.protocol.exceptions import ConfigError
from unsign_worker.store import refusals

SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
TLS_FILE_PARAMS = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile")
DEFAULT_SENTINEL_PORT = 26379


def is_sentinel(url: str) -> bool:
    return url.split("://", 1)[0].lower() in SENTINEL_SCHEMES


@dataclass(frozen=True)
class SentinelURL:
    hosts: tuple[tuple[str, int], ...]
    master: str
    db: int = 0
    username: str | None = None
    password: str | None = None
    tls: bool = False
    tls_files: dict[str, str] = field(default_factory=dict)
    sentinel_auth: bool = True

    def __repr__(self) -> str:  # never the password
        return (f"SentinelURL(hosts={list(self.hosts)}, master={self.master!r}, db={self.db}, "
                f"tls={self.tls})")

    def connection_kwargs(self) -> dict[str, Any]:
        """Credentials and TLS for a connection to the master (or a sentinel)."""
        out: dict[str, Any] = {}
        if self.password is not None:
            out["password"] = self.password
        if self.username:
            out["username"] = self.username
        if self.tls:
            out.update(ssl=True, ssl_cert_reqs=ssl.CERT_REQUIRED, **self.tls_files)
        return out

    def sentinel_kwargs(self) -> dict[str, Any]:
        out = self.connection_kwargs()
        if not self.sentinel_auth:
            out.pop("password", None)
            out.pop("username", None)
        return out


def parse_sentinel_url(url: str, *, name: str = "UNSIGN_REDIS_URL") -> SentinelURL:
    """Parse a ``redis+sentinel://`` URL. Raises ConfigError naming ``name`` and the rule (the
    message never repeats the URL, which may carry a password)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in SENTINEL_SCHEMES:
        raise ConfigError(f"{name}: not a redis+sentinel:// or rediss+sentinel:// URL")
    userinfo, _, hostlist = parts.netloc.rpartition("@")
    username, _, password = userinfo.partition(":") if userinfo else ("", "", "")
    hosts: list[tuple[str, int]] = []
    for entry in filter(None, (h.strip() for h in hostlist.split(","))):
        host, sep, port = entry.rpartition(":") if not entry.endswith("]") else (entry, "", "")
        if not sep:
            host, port = entry, str(DEFAULT_SENTINEL_PORT)
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"{name}: sentinel {entry!r} is not host:port")
        hosts.append((host.strip("[]"), int(port)))
    if not hosts:
        raise ConfigError(f"{name}: a Sentinel URL lists at least one sentinel host:port")
    path = [unquote(p) for p in parts.path.split("/") if p]
    if not path or len(path) > 2:
        raise ConfigError(f"{name}: the path is /<master name>[/<db>], e.g. /mymaster/0")
    if len(path) == 2 and not path[1].isdigit():
        raise ConfigError(f"{name}: the database {path[1]!r} is not a number")
    query = dict(parse_qsl(parts.query))
    unknown = sorted(set(query) - {*TLS_FILE_PARAMS, "sentinel_auth"})
    if unknown:
        raise ConfigError(f"{name}: unknown Sentinel URL parameter(s) {', '.join(unknown)}")
    if query.get("sentinel_auth", "same") not in ("same", "none"):
        raise ConfigError(f"{name}: sentinel_auth is 'same' (default) or 'none'")
    tls = scheme == "rediss+sentinel"
    if not tls and any(k in query for k in TLS_FILE_PARAMS):
        raise ConfigError(f"{name}: certificate files need rediss+sentinel://")
    return SentinelURL(hosts=tuple(hosts), master=path[0],
                       db=int(path[1]) if len(path) == 2 else 0,
                       username=unquote(username) or None,
                       password=unquote(password) if userinfo and ":" in userinfo else None,
                       tls=tls, tls_files={k: v for k, v in query.items()
                                           if k in TLS_FILE_PARAMS and v},
                       sentinel_auth=query.get("sentinel_auth", "same") == "same")


def connect(url: str, **kwargs: Any) -> redis.Redis:
    """A client for the state store at ``url``: plain, TLS or Sentinel (following the master
    through failovers). ``kwargs`` go to every connection (timeouts, pool size). A server
    refusing writes for now is a connection error (:mod:`unsign_worker.store.refusals`)."""
    refusals.install()
    if not is_sentinel(url):
        return redis.Redis.from_url(url, **kwargs)
    target = parse_sentinel_url(url)
    timeouts = {k: v for k, v in kwargs.items()
                if k in ("socket_timeout", "socket_connect_timeout")}
    sentinel = Sentinel(list(target.hosts), sentinel_kwargs={**target.sentinel_kwargs(),
                                                              **timeouts})
    return sentinel.master_for(target.master, db=target.db, **target.connection_kwargs(),
                               **kwargs)


def kombu_broker(url: str) -> tuple[str, dict[str, Any], dict[str, Any] | None]:
    """For a Sentinel broker URL: kombu's broker URL, the transport options to add
    (``master_name``, ``sentinel_kwargs``) and ``broker_use_ssl`` (None without TLS)."""
    target = parse_sentinel_url(url, name="UNSIGN_BROKER_URL")
    auth = ""
    if target.password is not None:
        auth = f"{quote(target.username or '', safe='')}:{quote(target.password, safe='')}@"
    broker = ";".join(f"sentinel://{auth}{host}:{port}/{target.db}"
                      for host, port in target.hosts)
    options: dict[str, Any] = {"master_name": target.master,
                               "sentinel_kwargs": target.sentinel_kwargs()}
    use_ssl = None
    if target.tls:
        use_ssl = {"ssl_cert_reqs": ssl.CERT_REQUIRED, **target.tls_files}
    return broker, options, use_ssl
