"""Which ``Host`` names the console answers, and which ``Origin`` a form may be posted from.

A page on any site can make the operator's browser reach the console under the site's own name
(DNS rebinding: ``rebind.attacker.example`` resolves to 127.0.0.1), so the ``Host`` header is
checked before anything else runs: a request for a name the console does not know gets 421
with a short plain message, and no page, token or cookie. The names it knows:

- the loopback names at the port it listens on: the loopback address it is bound to and
  ``localhost`` (bound to ``localhost``: ``127.0.0.1``, ``[::1]`` and ``localhost``; bound to a
  wildcard address such as ``0.0.0.0`` in a container: the same three, which the container's
  health check uses); bound to one other address, that address;
- the entries of ``UNSIGN_CONSOLE_HOSTS`` (comma-separated): ``host[:port]`` (plain HTTP, as
  through an SSH tunnel) or ``https://host[:port]`` (behind a TLS proxy). Without credentials
  every entry must be a loopback name (``localhost``, ``127.x.x.x``, ``[::1]``).

A POST's ``Origin``, when sent, must be one of these names' origins (``http://`` for the
defaults and bare entries, the entry's scheme otherwise): never compared with the request's own
``Host``, which the requester chooses.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from aiohttp import hdrs, web

from unsign_worker.protocol.exceptions import ConfigError
from unsign_worker.protocol.hosts import is_loopback_host

#: The variable listing the names the console is reached at, beside the loopback defaults.
HOSTS_ENV = "UNSIGN_CONSOLE_HOSTS"
WILDCARDS = frozenset({"", "0.0.0.0", "::"})
_DEFAULT_PORTS = {"http": 80, "https": 443}
# a DNS name or an IPv4 address (IPv6 is checked apart); no wildcard, no trailing dot
_HOSTNAME = re.compile(r"(?!-)[a-z0-9-]+(\.(?!-)[a-z0-9-]+)*|[0-9a-f:.]+")


@dataclass(frozen=True)
class Name:
    """One way to reach the console: the ``Host`` header a browser sends, and its origin."""

    host: str  # "console.example.com", "localhost:5560", "[::1]:5560"
    scheme: str = "http"

    @property
    def origin(self) -> str:
        return f"{self.scheme}://{self.host}"

    @property
    def hostname(self) -> str:
        return urlsplit(self.origin).hostname or ""


def parse_hosts(spec: str, *, variable: str = HOSTS_ENV) -> tuple[Name, ...]:
    """``"https://ops.example.com, localhost:8000"`` -> the names, lower case, default ports
    dropped. Raises ConfigError naming ``variable`` and the entry for anything but a host name
    or address with an optional port and scheme (no path, user, wildcard or query)."""
    names = []
    for item in (p.strip() for p in spec.split(",")):
        if not item:
            continue
        names.append(_parse_one(item, variable))
    return tuple(names)


def _parse_one(item: str, variable: str) -> Name:
    scheme, sep, _ = item.partition("://")
    text = item if sep else f"http://{item}"
    scheme = scheme.lower() if sep else "http"
    problem = f"{variable}: {item!r} is not host[:port] or https://host[:port]"
    if scheme not in _DEFAULT_PORTS:
        raise ConfigError(problem)
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise ConfigError(problem) from None
    hostname = parts.hostname or ""
    if (parts.path not in ("", "/") or parts.query or parts.fragment or "@" in parts.netloc
            or not _HOSTNAME.fullmatch(hostname)):
        raise ConfigError(problem)
    if ":" in hostname:
        try:
            ipaddress.IPv6Address(hostname)
        except ValueError:
            raise ConfigError(problem) from None
        hostname = f"[{hostname}]"
    host = hostname if port in (None, _DEFAULT_PORTS[scheme]) else f"{hostname}:{port}"
    return Name(host, scheme)


def check_without_credentials(names: Iterable[Name]) -> None:
    """A console without credentials may only be named by loopback names (else anyone who
    controls a DNS name listed could reach it): raises ConfigError otherwise."""
    for name in names:
        if not is_loopback_host(name.hostname):
            raise ConfigError(
                f"{HOSTS_ENV}: {name.host} is not a loopback name; a console without "
                "credentials answers loopback names only (set UNSIGN_CONSOLE_AUTH)")


def loopback_names(bound: str, port: int) -> tuple[Name, ...]:
    """The names a console bound to ``bound`` answers at ``port`` without being told."""
    bound = bound.strip("[]").lower()
    if bound in WILDCARDS or bound == "localhost":
        hosts = ["127.0.0.1", "[::1]", "localhost"]
    elif ":" in bound:
        hosts = [f"[{bound}]"] + (["localhost"] if is_loopback_host(bound) else [])
    else:
        hosts = [bound] + (["localhost"] if is_loopback_host(bound) else [])
    names = [Name(f"{h}:{port}") for h in hosts]
    if port == _DEFAULT_PORTS["http"]:  # browsers leave the default port out
        names += [Name(h) for h in hosts]
    return tuple(names)


class HostPolicy:
    """The names a running console answers (see the module). Empty until :meth:`listening`
    adds the loopback names of the ports it listens on: nothing is answered before."""

    def __init__(self, bound: str, names: Iterable[Name] = ()) -> None:
        self.bound = bound
        self.names: list[Name] = list(names)
        self._hosts: frozenset[str] = frozenset()
        self._origins: frozenset[str] = frozenset()
        self._index()

    def listening(self, ports: Iterable[int]) -> None:
        for port in sorted(set(ports)):
            self.names[:0] = loopback_names(self.bound, port)
        self._index()

    def _index(self) -> None:
        self._hosts = frozenset(n.host for n in self.names)
        self._origins = frozenset(n.origin for n in self.names)

    def allows_host(self, headers: list[str]) -> bool:
        """``headers``: every ``Host`` header of the request (exactly one is needed)."""
        return len(headers) == 1 and headers[0].strip().lower() in self._hosts

    def allows_origin(self, origin: str | None) -> bool:
        """True when a request with this ``Origin`` (None: none sent) may change state."""
        return origin is None or origin.lower() in self._origins

    def describe(self) -> str:
        return ", ".join(dict.fromkeys(n.host if n.scheme == "http" else n.origin
                                       for n in self.names))


POLICY = web.AppKey("host_policy", HostPolicy)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def host_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """421 for a ``Host`` the console does not answer, before any other middleware or handler
    runs (no page, no CSRF token, no cookie)."""
    if not request.app[POLICY].allows_host(request.headers.getall(hdrs.HOST, [])):
        raise web.HTTPMisdirectedRequest(
            text="misdirected request: this console does not answer to that Host name\n")
    return await handler(request)
