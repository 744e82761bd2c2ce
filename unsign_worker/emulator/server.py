"""The HTTP side: ``/gateway.do`` (GET and POST) and the admin API, served by aiohttp.

The gateway handler applies the latency and the stage-1 faults, hands the raw query string and
form body to :func:`~unsign_worker.emulator.process.process`, and carries out what it decides:
an answer, an HTTP 5xx, a reset, a hang or a dropped connection. There is no access log: query
strings carry signatures. A client that goes away does not cancel its request (as at the real
gateway, an unsign in progress completes).
"""

from __future__ import annotations

import asyncio
import socket
import struct
from http import HTTPStatus

from aiohttp import web

from unsign_worker.emulator.admin_api import add_admin_routes
from unsign_worker.emulator.process import Outcome, process
from unsign_worker.emulator.state import EmulatorState
from unsign_worker.exceptions import ConfigError
from unsign_worker.settings import is_loopback_host

GATEWAY_PATH = "/gateway.do"
ADMIN_PREFIX = "/_emulator"
STATE_KEY = web.AppKey("emulator_state", EmulatorState)
#: Pending connections the listening socket queues (1,000 slow clients connect at once).
LISTEN_BACKLOG = 4096
#: How long a stopping server waits for requests in progress, seconds.
SHUTDOWN_TIMEOUT_SECONDS = 1.0
_FORM = "application/x-www-form-urlencoded"
_XML_HEADERS = {"Content-Type": "text/xml"}


def check_bind(host: str, *, public: bool) -> None:
    """Refuse a non-loopback address unless ``public``. Raises: ConfigError."""
    if not public and not is_loopback_host(host):
        raise ConfigError(f"--host {host}: the emulator only binds loopback addresses "
                          "(127.0.0.1, ::1, localhost) unless --public is given")


async def _gateway(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    state.stats.requests += 1
    state.in_flight += 1
    if state.in_flight > state.stats.max_in_flight:
        state.stats.max_in_flight = state.in_flight
    try:
        return await _serve_gateway(request, state)
    finally:
        state.in_flight -= 1


async def _serve_gateway(request: web.Request, state: EmulatorState) -> web.StreamResponse:
    faults = state.faults
    delay = faults.delay_seconds(state.rand)
    if delay:
        await asyncio.sleep(delay)
    fault = faults.draw_transport(state.rand)
    if fault is not None:
        state.stats.faults[fault] += 1
        return await _misbehave(request, fault, state)
    query = request.raw_path.partition("?")[2].encode("utf-8", errors="surrogateescape")
    body = b""
    if request.method == "POST" and request.content_type in (_FORM, "application/octet-stream"):
        body = await request.read()
    outcome = process(state, query, body)
    if outcome.action == "answer":
        return web.Response(body=outcome.body, headers=_XML_HEADERS)
    return await _misbehave(request, outcome.action, state)


async def _misbehave(request: web.Request, action: str, state: EmulatorState
                     ) -> web.StreamResponse:
    if action.startswith("HTTP_"):
        status = int(action[5:])
        phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else ""
        return web.Response(status=status, text=f"<html><body>{status} {phrase}</body></html>",
                            content_type="text/html")
    if action == "HANG":
        await asyncio.sleep(state.faults.hang_seconds)
    _drop(request, reset=action == "RESET")
    return _dropped(Outcome(action=action))


def _drop(request: web.Request, *, reset: bool) -> None:
    """Close the connection without an answer; ``reset`` sends a TCP RST instead of a FIN."""
    transport = request.transport
    if transport is None or transport.is_closing():
        return
    if reset:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def _dropped(outcome: Outcome) -> web.StreamResponse:
    # the transport is gone: aiohttp discards whatever is returned
    return web.Response(status=499, reason=outcome.action)


async def _health(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    return web.json_response({"status": "ok", "partner": state.config.partner,
                              "agreements": len(state.book)})


def make_app(state: EmulatorState) -> web.Application:
    """The aiohttp application serving ``state``."""
    app = web.Application(client_max_size=1024 * 1024)
    app[STATE_KEY] = state
    app.router.add_route("GET", GATEWAY_PATH, _gateway)
    app.router.add_route("POST", GATEWAY_PATH, _gateway)
    app.router.add_get(f"{ADMIN_PREFIX}/health", _health)
    add_admin_routes(app, ADMIN_PREFIX, STATE_KEY)
    return app


async def start_server(state: EmulatorState, *, host: str, port: int,
                       public: bool = False) -> tuple[web.AppRunner, int]:
    """Start serving ``state``; returns the runner (``await runner.cleanup()`` stops it) and
    the port actually bound (useful with ``port=0``).

    Raises:
        ConfigError: a non-loopback host without ``public``, or the address is in use.
    """
    check_bind(host, public=public)
    runner = web.AppRunner(make_app(state), access_log=None,
                           shutdown_timeout=SHUTDOWN_TIMEOUT_SECONDS, handler_cancellation=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=LISTEN_BACKLOG)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise ConfigError(f"--port {port}: cannot listen on {host}: {exc.strerror}") from None
    server = site._server
    sockets = getattr(server, "sockets", None) or []
    bound = sockets[0].getsockname()[1] if sockets else port
    return runner, int(bound)
