"""The HTTP side: ``/gateway.do`` (GET and POST) and the admin API, on aiohttp's low-level
server (no application router or middleware: two paths do not need them, and the gateway path
is the hot one), over plain HTTP or HTTPS (the same handlers; see :mod:`.tls`).

The gateway handler applies the latency and the stage-1 faults, hands the raw query string and
form body to :func:`~unsign_worker.emulator.process.process`, and carries out what it decides:
an answer, an HTTP 5xx, a reset, a hang or a dropped connection. There is no access log: query
strings carry signatures; the request log (:mod:`.request_log`, when the state has one) records
what was asked and answered, never a parameter. A client that goes away does not cancel its
request (as at the real gateway, an unsign in progress completes).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct
import time
from collections.abc import Awaitable, Callable
from http import HTTPStatus

from aiohttp import web

from unsign_worker.emulator.admin_api import handle_admin
from unsign_worker.emulator.connections import CountingServer
from unsign_worker.emulator.errors import EmulatorConfigError
from unsign_worker.emulator.loopback import is_loopback
from unsign_worker.emulator.process import process
from unsign_worker.emulator.reply import Outcome
from unsign_worker.emulator.state import EmulatorState

GATEWAY_PATH = "/gateway.do"
ADMIN_PREFIX = "/_emulator"
#: Pending connections the listening socket queues (1,000 slow clients connect at once).
LISTEN_BACKLOG = 4096
#: How long a stopping server waits for requests in progress, seconds.
SHUTDOWN_TIMEOUT_SECONDS = 1.0
_FORM = "application/x-www-form-urlencoded"
_XML_HEADERS = {"Content-Type": "text/xml"}
Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]


def check_bind(host: str, *, public: bool) -> None:
    """Refuse a non-loopback address unless ``public``. Raises: EmulatorConfigError."""
    if not public and not is_loopback(host):
        raise EmulatorConfigError(f"--host {host}: the emulator only binds loopback addresses "
                                  "(127.0.0.1, ::1, localhost) unless --public is given")


async def _gateway(request: web.BaseRequest, state: EmulatorState) -> web.StreamResponse:
    state.stats.requests += 1
    state.in_flight += 1
    if state.in_flight > state.stats.max_in_flight:
        state.stats.max_in_flight = state.in_flight
    received_at = time.time()
    outcome: Outcome | None = None
    applied = False
    try:
        outcome, applied = await _serve_gateway(request, state)
        if outcome.action == "answer":
            return web.Response(body=outcome.body, headers=_XML_HEADERS)
        return await _misbehave(request, outcome.action, state)
    finally:
        state.in_flight -= 1
        if state.request_log is not None and outcome is not None:
            state.request_log.write(
                received_at=received_at, answered_at=time.time(), peer=request.remote or "",
                service=outcome.service, agreement=outcome.agreement, code=outcome.code,
                action=outcome.action, applied=applied)


async def _serve_gateway(request: web.BaseRequest, state: EmulatorState
                         ) -> tuple[Outcome, bool]:
    """What to do with the request, and whether it unsigned an agreement."""
    faults = state.faults
    delay = faults.delay_seconds(state.rand)
    if delay:
        await asyncio.sleep(delay)
    fault = faults.draw_transport(state.rand)
    if fault is not None:
        state.stats.faults[fault] += 1
        return Outcome(action=fault), False
    query = request.raw_path.partition("?")[2].encode("utf-8", errors="surrogateescape")
    body = b""
    if request.method == "POST" and request.content_type in (_FORM, "application/octet-stream"):
        body = await request.read()
    unsigns = state.stats.unsigns
    outcome = process(state, query, body)  # synchronous: no other request runs in between
    return outcome, state.stats.unsigns > unsigns


async def _misbehave(request: web.BaseRequest, action: str, state: EmulatorState
                     ) -> web.StreamResponse:
    if action.startswith("HTTP_"):
        status = int(action[5:])
        phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else ""
        return web.Response(status=status, text=f"<html><body>{status} {phrase}</body></html>",
                            content_type="text/html")
    if action == "HANG":
        await asyncio.sleep(state.faults.hang_seconds)
    _drop(request, reset=action == "RESET")
    # the transport is gone: aiohttp discards whatever is returned
    return web.Response(status=499, reason=action)


def _drop(request: web.BaseRequest, *, reset: bool) -> None:
    """Close the connection without an answer; ``reset`` sends a TCP RST instead of a FIN."""
    transport = request.transport
    if transport is None or transport.is_closing():
        return
    if reset:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def make_handler(state: EmulatorState) -> Handler:
    """The request handler serving ``state``: the gateway, the admin API, else 404."""
    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        path = request.path
        if path == GATEWAY_PATH:
            if request.method not in ("GET", "POST"):
                return web.Response(status=405, headers={"Allow": "GET, POST"})
            return await _gateway(request, state)
        if path.startswith(ADMIN_PREFIX + "/"):
            return await handle_admin(request, state, path[len(ADMIN_PREFIX):])
        return web.Response(status=404, text="not found")
    return handle


async def start_server(state: EmulatorState, *, host: str, port: int, public: bool = False,
                       ssl_context: ssl.SSLContext | None = None) -> tuple[web.BaseRunner, int]:
    """Start serving ``state`` (HTTPS with ``ssl_context``, see
    :func:`~unsign_worker.emulator.tls.server_ssl_context`; plain HTTP without); returns the
    runner (``await runner.cleanup()`` stops it) and the port actually bound (useful with
    ``port=0``). Every TCP connection accepted is counted in ``state.stats.connections_opened``.

    Raises:
        EmulatorConfigError: a non-loopback host without ``public``, or the address is in use.
    """
    check_bind(host, public=public)

    def opened() -> None:
        state.stats.connections_opened += 1

    server = CountingServer(make_handler(state), on_connection=opened, access_log=None,
                            handler_cancellation=False)
    runner = web.ServerRunner(server, shutdown_timeout=SHUTDOWN_TIMEOUT_SECONDS)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=LISTEN_BACKLOG, ssl_context=ssl_context)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise EmulatorConfigError(f"--port {port}: cannot listen on {host}: "
                                  f"{exc.strerror}") from None
    sockets = getattr(site._server, "sockets", None) or []
    bound = sockets[0].getsockname()[1] if sockets else port
    return runner, int(bound)
