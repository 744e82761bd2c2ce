"""The console's aiohttp application: security headers, Host names, authentication, CSRF,
templates.

Secure by default: a request naming a ``Host`` the console does not know is refused before
anything else runs (:mod:`.hosts`: no DNS rebinding); credentials are required on any address
but loopback, and failed sign-ins are throttled per user and client address (:mod:`.throttle`);
every response says not to frame it (``X-Frame-Options: DENY``, ``frame-ancestors 'none'``), not
to sniff it, and carries a Content-Security-Policy that allows no script at all. Every string a
template prints goes through :func:`unsign_worker.protocol.masking.mask_text` (Jinja's
``finalize``), so an email or account number that slipped into a reason or a note is still
masked. The access log names the method, the path and the status, never a query string (a lookup
may hold a reference).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import signal
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import jinja2
import markupsafe
import redis
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from unsign_worker.console import auth, csrf
from unsign_worker.console.hosts import (
    POLICY,
    HostPolicy,
    Name,
    check_without_credentials,
    host_middleware,
)
from unsign_worker.console.throttle import LoginThrottle
from unsign_worker.ops.operations import Operations
from unsign_worker.protocol.masking import mask_text
from unsign_worker.settings import Settings
from unsign_worker.store.outage import OUTAGE_ERRORS, Outage

log = logging.getLogger(__name__)

CSP = ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'")
# same-origin, not no-referrer: under no-referrer Chromium sends "Origin: null" with a form POST,
# and the CSRF check compares the Origin with this server.
HEADERS = {"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff",
           "Content-Security-Policy": CSP, "Referrer-Policy": "same-origin",
           "Cache-Control": "no-store"}
USER = web.AppKey("user_map", dict)
THROTTLE = web.AppKey("login_throttle", LoginThrottle)
OPS = web.AppKey("ops", Operations)
SECRET = web.AppKey("secret", bytes)
JINJA = web.AppKey("jinja", jinja2.Environment)
OUTAGE = web.AppKey("outage", Outage)
#: Seconds after which the page shown during a Redis outage reloads itself.
OUTAGE_RETRY_SECONDS = 5
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _finalize(value: Any) -> Any:
    # Markup is a macro's output, whose own values were finalized already
    if isinstance(value, str) and not isinstance(value, markupsafe.Markup):
        return mask_text(value)
    return value


def _when(epoch: float | None) -> str:
    if not epoch:
        return "-"
    return datetime.fromtimestamp(float(epoch), UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _age(epoch: float | None) -> str:
    if not epoch:
        return "-"
    seconds = max(0, int(time.time() - float(epoch)))
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h {seconds % 3600 // 60}m"
    return f"{seconds // 86400}d {seconds % 86400 // 3600}h"


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("unsign_worker.console", "templates"),
        autoescape=True, finalize=_finalize)
    env.filters["when"] = _when
    env.filters["age"] = _age
    return env


@web.middleware
async def headers_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        exc.headers.update(HEADERS)
        raise
    response.headers.update(HEADERS)
    return response


@web.middleware
async def outage_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A Redis outage answers 503 "Redis unavailable since ..., retrying" (logged once per
    outage, never a traceback) and the console carries on; the first page served after it
    says in the log that Redis is back."""
    outage = request.app[OUTAGE]
    try:
        response = await handler(request)
    except OUTAGE_ERRORS as exc:
        outage.failed(exc)
        since = _when(outage.since)
        return web.Response(
            status=503, content_type="text/html", charset="utf-8",
            headers={"Retry-After": str(OUTAGE_RETRY_SECONDS)},
            text=(f"<!doctype html><title>Redis unavailable</title><h1>Redis unavailable "
                  f"since {since}, retrying</h1><p>The console carries on as soon as Redis "
                  f"answers again: reload this page in a few seconds.</p>"))
    if outage.active and response.status < 500:
        outage.recovered()
    return response


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    users = request.app[USER]
    if request.path == "/healthz" and request.method == "GET":
        request["user"] = "-"  # the container's health check: it says nothing else
        return await handler(request)
    if not users:
        request["user"] = "local"
        return await handler(request)
    header = request.headers.get("Authorization")
    claimed = auth.claimed(header)
    throttle, address = request.app[THROTTLE], request.remote or "-"
    if claimed is not None:
        wait = throttle.retry_after(claimed[0], address)
        if wait:  # locked out: the password is not even looked at
            raise web.HTTPTooManyRequests(
                text=f"too many failed sign-ins: try again in {wait} seconds\n",
                headers={"Retry-After": str(wait)})
    user = auth.check(header, users)
    if user is None:
        if claimed is not None:
            _failed(throttle, claimed[0], address)
        raise web.HTTPUnauthorized(
            text="credentials required", headers={
                "WWW-Authenticate": f'Basic realm="{auth.REALM}", charset="UTF-8"'})
    throttle.succeeded(user, address)
    request["user"] = user
    return await handler(request)


def _failed(throttle: LoginThrottle, user: str, address: str) -> None:
    penalty = throttle.failed(user, address)
    if penalty:  # the name as sent, cut and quoted: never the password
        log.warning("sign-in locked out for %.0f s: user %r from %s failed too often",
                    penalty, user[:64], address)


@web.middleware
async def csrf_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    nonce = request.cookies.get(csrf.COOKIE) or ""
    fresh = not nonce
    if fresh:
        nonce = csrf.new_nonce()
    request["csrf_token"] = csrf.token_for(request.app[SECRET], request["user"], nonce)
    if request.method not in ("GET", "HEAD"):
        if not request.app[POLICY].allows_origin(request.headers.get("Origin")):
            raise web.HTTPForbidden(text="cross-origin request refused (the console's own "
                                         "addresses: UNSIGN_CONSOLE_HOSTS)")
        form = await request.post()
        token = form.get(csrf.FIELD)
        if fresh or not csrf.valid(request.app[SECRET], request["user"], nonce,
                                   token if isinstance(token, str) else None):
            raise web.HTTPForbidden(text="missing or invalid CSRF token: reload the page")
    response = await handler(request)
    if fresh:
        response.set_cookie(csrf.COOKIE, nonce, httponly=True, samesite="Strict", path="/")
    return response


class PathOnlyAccessLogger(AbstractAccessLogger):
    """``GET /escalations 200 12ms user`` : no query string, no header."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info("%s %s %s %.0fms %s", request.method, request.path, response.status,
                         time * 1000, request.get("user", "-"))


def render(request: web.Request, template: str, **context: Any) -> web.Response:
    page = request.app[JINJA].get_template(template).render(
        user=request["user"], csrf_token=request["csrf_token"], csrf_field=csrf.FIELD,
        flash=request.query.get("done", ""), error=request.query.get("error", ""),
        path=request.path, **context)
    return web.Response(text=page, content_type="text/html", charset="utf-8")


def operator(request: web.Request) -> str:
    """Who did it, for the journal: the signed-in user, through the console."""
    return f"{request['user']} (console)"


async def stylesheet(_request: web.Request) -> web.Response:
    css = resources.files("unsign_worker.console").joinpath("static/console.css").read_text()
    return web.Response(text=css, content_type="text/css")


async def healthz(_request: web.Request) -> web.Response:
    return web.Response(text="OK")


async def index(_request: web.Request) -> web.Response:
    raise web.HTTPFound("/escalations")


def create_app(settings: Settings, client: redis.Redis, users: dict[str, str],
               hosts: HostPolicy, throttle: LoginThrottle | None = None) -> web.Application:
    """The application; ``hosts`` answers nothing until told the ports it listens on."""
    from unsign_worker.console import campaigns, escalations, health, lookup

    app = web.Application(middlewares=[headers_middleware, host_middleware, auth_middleware,
                                       outage_middleware, csrf_middleware],
                          client_max_size=64 * 1024)
    app[USER] = users
    app[POLICY] = hosts
    app[THROTTLE] = throttle or LoginThrottle()
    app[OPS] = Operations(settings, client)
    app[SECRET] = secrets.token_bytes(32)
    app[JINJA] = _environment()
    app[OUTAGE] = Outage("Redis", log.warning)
    app.router.add_get("/", index)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/static/console.css", stylesheet)
    for module in (escalations, campaigns, health, lookup):
        module.add_routes(app.router)
    return app


def serve(settings: Settings, client: redis.Redis, *, host: str, port: int,
          users: dict[str, str], on_ready: Callable[[str], None],
          names: tuple[Name, ...] = ()) -> None:
    """Serve until SIGINT/SIGTERM; ``on_ready(url)`` once listening (``port`` 0: any free
    port). ``names``: ``UNSIGN_CONSOLE_HOSTS``. Refuses a non-loopback address, or a
    non-loopback name, without credentials (raises ConfigError)."""
    from unsign_worker.protocol.exceptions import ConfigError

    if not users and not auth.is_loopback(host):
        raise ConfigError(f"console: refusing to listen on {host} without credentials; set "
                          "UNSIGN_CONSOLE_AUTH=user:password (or listen on 127.0.0.1)")
    if not users:
        check_without_credentials(names)
    hosts = HostPolicy(host, names)
    asyncio.run(_serve(create_app(settings, client, users, hosts), host, port, on_ready))


async def _serve(app: web.Application, host: str, port: int,
                 on_ready: Callable[[str], None]) -> None:
    runner = web.AppRunner(app, access_log_class=PathOnlyAccessLogger,
                           access_log=logging.getLogger("unsign_worker.console.access"))
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    server: Any = site._server  # aiohttp keeps the listening sockets there
    ports = [s.getsockname()[1] for s in server.sockets] if server and server.sockets else []
    bound = ports[0] if ports else port
    app[POLICY].listening(ports or [port])
    log.info("answering the Host names %s", app[POLICY].describe())
    shown = f"[{host}]" if ":" in host else host
    on_ready(f"http://{shown}:{bound}/")
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
