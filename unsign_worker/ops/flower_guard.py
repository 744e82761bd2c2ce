"""What keeps a browser from using a Flower served without authentication (``--no-auth``).

Without credentials, Flower (2.x) answers every API request with
``Access-Control-Allow-Origin: *`` and skips its own cross-site check, so any web page the
operator visits could read it, or post a job to ``/api/task/send-task/...`` with a ``text/plain``
body (a "simple" request, sent without a preflight); and a DNS-rebinding page reaches it under
its own host name. :func:`guard` closes all three on a Flower application:

- a request whose ``Host`` is not a loopback name (or the bound address) gets 403;
- a request that a browser marks cross-site (``Sec-Fetch-Site``) or whose ``Origin`` is not the
  host it was sent to gets 403, whatever its method;
- no response carries an ``Access-Control-Allow-*`` header.

With basic auth, Flower's own checks apply (the browser of another site has no credentials).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import tornado.web

#: Host names a loopback Flower answers to.
LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})
#: ``Sec-Fetch-Site`` values of requests the operator made from Flower's own pages or by hand.
SAME_SITE = frozenset({"same-origin", "none"})


def host_name(host: str) -> str:
    """``127.0.0.1:5555`` -> ``127.0.0.1``; ``[::1]:5555`` -> ``::1``; lower case."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if host.count(":") == 1 else host


def refusal(headers: Any, host: str, allowed: frozenset[str]) -> str:
    """Why a request must be refused, or ``""``. ``headers``: the request's headers."""
    if host_name(host) not in allowed:
        return "unknown Host (only loopback names are served without authentication)"
    site = headers.get("Sec-Fetch-Site")
    if site and site not in SAME_SITE:
        return "cross-site request"
    origin = headers.get("Origin")
    if origin and (origin == "null" or urlsplit(origin).netloc.lower() != host.lower()):
        return "cross-origin request"
    return ""


class _NoCors(tornado.web.OutputTransform):
    """Drops every ``Access-Control-Allow-*`` header Flower sets."""

    def transform_first_chunk(self, status_code: int, headers: Any, chunk: bytes,
                              finishing: bool) -> tuple[int, Any, bytes]:
        for name in [n for n in headers if n.lower().startswith("access-control-allow-")]:
            del headers[name]
        return status_code, headers, chunk


def guard(app: tornado.web.Application, address: str) -> None:
    """Apply the rules above to ``app`` (a Flower served without authentication)."""
    allowed = LOOPBACK_NAMES | {host_name(address)}
    find = app.find_handler

    def find_handler(request: Any, **kwargs: Any) -> Any:
        why = refusal(request.headers, request.host or "", allowed)
        if why:
            return app.get_handler_delegate(request, tornado.web.ErrorHandler,
                                            {"status_code": 403})
        return find(request, **kwargs)

    app.find_handler = find_handler  # type: ignore[method-assign]
    app.add_transform(_NoCors)
