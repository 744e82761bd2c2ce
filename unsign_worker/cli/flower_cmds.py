"""``unsign-worker flower``: Flower on the project's app, with auth, bounded memory and masking.

Flower runs in this process (not through ``celery -A``) so that everything it stores or serves
passes through :mod:`unsign_worker.worker.monitoring` first: task events and the workers' inspect
replies are masked before Flower keeps them, its HTML pages use the ``format_task`` hook, and its
``/metrics`` also carries the project's own series (:mod:`unsign_worker.ops.exporter`).

Credentials come from ``FLOWER_BASIC_AUTH`` (``user:password``, several separated by commas) or
from the file named by ``FLOWER_BASIC_AUTH_FILE``; never from the command line, where ``ps``
would show them.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from dataclasses import dataclass
from typing import Any

import click

from unsign_worker.cli.common import fail, load_settings
from unsign_worker.console.auth import parse_users
from unsign_worker.protocol.exceptions import ConfigError
from unsign_worker.protocol.hosts import is_loopback_host
from unsign_worker.settings import Settings

DEFAULT_PORT = 5555
DEFAULT_ADDRESS = "127.0.0.1"
#: Tasks Flower keeps in memory; its own default (100,000) grows memory fast (flower#1305).
DEFAULT_MAX_TASKS = 10_000
#: Offline workers are dropped from Flower's metrics after this long, seconds.
PURGE_OFFLINE_WORKERS_SECONDS = 3600
#: Shortest password accepted in FLOWER_BASIC_AUTH.
MIN_PASSWORD_LENGTH = 8


@dataclass(frozen=True)
class FlowerOptions:
    """How to serve Flower; ``basic_auth`` empty means no authentication (loopback only)."""

    port: int = DEFAULT_PORT
    address: str = DEFAULT_ADDRESS
    basic_auth: tuple[str, ...] = ()
    max_tasks: int = DEFAULT_MAX_TASKS
    control: bool = False
    url_prefix: str = ""

    def __repr__(self) -> str:  # never show the credentials
        users = [c.partition(":")[0] for c in self.basic_auth]
        return (f"FlowerOptions(port={self.port}, address={self.address!r}, users={users}, "
                f"max_tasks={self.max_tasks}, control={self.control})")


def parse_basic_auth(raw: str) -> tuple[str, ...]:
    """``user:password[,user2:password2]`` -> credentials. Raises ValueError naming the rule."""
    creds = tuple(part.strip() for part in raw.split(",") if part.strip())
    if not creds:
        raise ValueError("FLOWER_BASIC_AUTH: is empty; give user:password")
    try:
        parse_users(raw, variable="FLOWER_BASIC_AUTH", min_password=MIN_PASSWORD_LENGTH)
    except ConfigError as exc:
        raise ValueError(str(exc)) from None
    return creds


def credentials_from_env(env: dict[str, str]) -> tuple[str, ...]:
    """Credentials from ``FLOWER_BASIC_AUTH`` or ``FLOWER_BASIC_AUTH_FILE`` (empty if neither).

    Raises:
        ValueError: malformed credentials, or an unreadable file (the message names it).
    """
    raw = env.get("FLOWER_BASIC_AUTH", "")
    path = env.get("FLOWER_BASIC_AUTH_FILE", "")
    if not raw and path:
        try:
            with open(path, encoding="utf-8") as handle:
                raw = handle.read().strip()
        except OSError as exc:
            raise ValueError(f"FLOWER_BASIC_AUTH_FILE: cannot read {path!r}: "
                             f"{exc.strerror}") from None
    return parse_basic_auth(raw) if raw else ()


def check_exposure(address: str, creds: tuple[str, ...], no_auth: bool,
                   control: bool = False) -> None:
    """Refuse unsafe combinations. Raises ValueError with the reason and the way out."""
    if no_auth and not is_loopback_host(address or "0.0.0.0"):
        raise ValueError(f"--no-auth is allowed only on a loopback address, not {address!r}")
    if no_auth and control:
        raise ValueError("--control needs authentication: worker control (shutdown, revoke, "
                         "pool size) is never served to anyone who can reach the port; set "
                         "FLOWER_BASIC_AUTH instead of --no-auth")
    if not no_auth and not creds:
        raise ValueError("FLOWER_BASIC_AUTH is not set: give user:password (or "
                         "FLOWER_BASIC_AUTH_FILE), or use --no-auth on a loopback address")


def build_flower(settings: Settings, opts: FlowerOptions) -> Any:
    """Build the Flower application for ``settings`` (not started). Returns ``flower.app.Flower``.

    Tornado's option object is process-global: build one Flower per process.
    """
    from flower.app import Flower
    from flower.options import options
    from flower.urls import settings as web_settings
    from prometheus_client import REGISTRY

    from unsign_worker.ops.exporter import UnsignCollector
    from unsign_worker.ops.flower_events import ride_out_outages
    from unsign_worker.ops.flower_guard import guard
    from unsign_worker.store.keys import Keys
    from unsign_worker.store.sentinel import connect
    from unsign_worker.worker.app import create_app
    from unsign_worker.worker.monitoring import format_task, sanitize_inspect, sanitize_task_event

    options.port = opts.port
    options.address = opts.address
    options.basic_auth = list(opts.basic_auth)
    options.max_tasks = opts.max_tasks
    options.persistent = False  # a shelve file would keep task data on disk (and bloat)
    options.read_only = not opts.control
    options.purge_offline_workers = PURGE_OFFLINE_WORKERS_SECONDS
    options.format_task = format_task
    options.url_prefix = opts.url_prefix
    options.enable_events = True
    if not opts.basic_auth:
        os.environ["FLOWER_UNAUTHENTICATED_API"] = "true"  # loopback only (checked above)
    else:
        os.environ.pop("FLOWER_UNAUTHENTICATED_API", None)

    app = create_app(settings)
    flower = Flower(capp=app, options=options, **web_settings)
    if not opts.basic_auth:  # no wildcard CORS, no cross-site request, no foreign Host
        guard(flower, opts.address)

    receive = flower.events.on_event
    flower.events.on_event = lambda event: receive(
        sanitize_task_event(event) if str(event.get("type", "")).startswith("task-") else event)
    update = flower.inspector._on_update
    flower.inspector._on_update = lambda worker, method, response: update(
        worker, method, sanitize_inspect(method, response))
    ride_out_outages(flower)

    client = connect(settings.redis_url, socket_connect_timeout=3, socket_timeout=5)
    REGISTRY.register(UnsignCollector(client, Keys(settings.key_prefix),
                                      broker_is_redis=settings.broker_url.startswith("redis")))
    return flower


def serve(flower: Any, opts: FlowerOptions) -> None:
    """Serve until SIGINT/SIGTERM."""
    def stop(signum: int, _frame: Any) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    port = flower.start_http_server()
    host = opts.address if ":" not in opts.address else f"[{opts.address}]"
    prefix = f"/{opts.url_prefix.strip('/')}/" if opts.url_prefix else "/"
    who = (f"basic auth, user(s) {', '.join(c.partition(':')[0] for c in opts.basic_auth)}"
           if opts.basic_auth else "NO authentication (loopback only)")
    click.echo(f"flower: http://{host}:{port}{prefix} ({who}; max {opts.max_tasks} tasks kept; "
               f"{'control allowed' if opts.control else 'read-only'})")
    click.echo(f"flower: Prometheus metrics at http://{host}:{port}{prefix}metrics "
               "(no auth: keep it on a private network)")
    sys.stdout.flush()
    try:
        flower.start()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        flower.stop()


@click.command("flower", epilog="Example: FLOWER_BASIC_AUTH=ops:long-secret unsign-worker flower "
                                "--port 5555")
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=int,
              help="TCP port (0: any free port, printed when ready).")
@click.option("--address", default=DEFAULT_ADDRESS, show_default=True,
              help="Address to bind; anything but loopback needs basic auth.")
@click.option("--no-auth", is_flag=True,
              help="Serve without authentication (only on a loopback address, read-only, to "
                   "loopback Host names and same-origin requests only).")
@click.option("--max-tasks", default=DEFAULT_MAX_TASKS, show_default=True,
              type=click.IntRange(min=100), help="Tasks kept in memory (oldest dropped first).")
@click.option("--control", is_flag=True,
              help="Allow worker control from Flower (shutdown, pool size, revoke); "
                   "read-only without it.")
@click.option("--url-prefix", default="", help="Serve under this path (behind a proxy).")
def flower_cmd(port: int, address: str, no_auth: bool, max_tasks: int, control: bool,
               url_prefix: str) -> None:
    """Start Flower to watch the workers and their tasks (arguments shown masked).

    Needs FLOWER_BASIC_AUTH=user:password (or FLOWER_BASIC_AUTH_FILE) unless --no-auth on a
    loopback address. Workers must run with events on (``unsign-worker worker`` does).
    """
    from dotenv import dotenv_values

    settings = load_settings()
    env = {k: v for k, v in dotenv_values(".env").items() if v is not None}
    env.update(os.environ)
    try:
        creds = () if no_auth else credentials_from_env(env)
        check_exposure(address, creds, no_auth, control)
    except ValueError as exc:
        fail(str(exc))
    opts = FlowerOptions(port=port, address=address, basic_auth=creds, max_tasks=max_tasks,
                         control=control, url_prefix=url_prefix)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: "
                        "%(message)s")
    from unsign_worker.worker.monitoring import MaskingFilter

    for handler in logging.getLogger().handlers:
        handler.addFilter(MaskingFilter())
    logging.getLogger("tornado.access").setLevel(logging.WARNING)
    try:
        flower = build_flower(settings, opts)
    except Exception as exc:  # a bad broker URL and the like: say so without a traceback
        fail(f"cannot start Flower: {exc}")
    serve(flower, opts)


def register(group: click.Group) -> None:
    group.add_command(flower_cmd)
