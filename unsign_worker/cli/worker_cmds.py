"""``unsign-worker worker``: the project's Celery worker with its defaults, one process per core."""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from unsign_worker.cli.common import fail, load_settings
from unsign_worker.store.keys import HOOK_QUEUE, QUEUE
from unsign_worker.worker.processes import default_processes, hostnames, supervise

#: Default pool and concurrency of ``unsign-worker worker``: a job is one HTTP call waiting on
#: the gateway, so greenlets (no lock contention between OS threads, about a third less CPU per
#: job than threads in docs/performance.md) and enough slots to keep 100 requests in flight.
DEFAULT_POOL = "gevent"
DEFAULT_CONCURRENCY = 100
@click.command(
    "worker",
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    epilog="Example: unsign-worker worker --concurrency 64 --hostname w1@%h",
)
@click.pass_context
def worker_cmd(ctx: click.Context) -> None:
    """Start a worker with the project's app, queues and pool.

    Any other option is passed to ``celery worker`` unchanged (e.g. --concurrency, --hostname,
    --loglevel). Defaults: --pool gevent --concurrency 100, queues unsign and unsign.hooks,
    task events on, no gossip, and one worker process per core (``--processes N`` to choose;
    a worker given a --hostname is one process unless --processes says otherwise). The
    processes are named worker1@HOST, worker2@HOST, ... (NAME-1@..., NAME-2@... with
    --hostname NAME@...);
    a signal to this command reaches them all, and if one stops the others are stopped too.
    """
    extra = list(ctx.args)
    processes, extra = _take_processes(extra)
    if processes is None:
        processes = 1 if _option(extra, "-n", "--hostname") is not None else default_processes()
    if processes > 1:
        raise SystemExit(_supervise(processes, extra))
    if _pool_given(extra) is None and DEFAULT_POOL == "gevent":
        _exec_with_pool(extra)
    from unsign_worker.worker.app import create_app

    settings = _checked_settings()
    app = create_app(settings)
    # Without gossip: the product uses none of what it offers (leader election, other workers'
    # joins and leaves), and its view of the other workers' heartbeats logs "Substantial drift
    # ... clocks are out of sync" whenever heartbeats arrive late (after this host was cut from
    # the broker), a false alarm on hosts sharing one clock. Heartbeats still go to Flower.
    argv = ["worker", "-E", "--without-gossip"]
    given = " ".join(extra)
    if _pool_given(extra) is None:
        argv += ["--pool", DEFAULT_POOL]
    if "-c" not in extra and "--concurrency" not in given:
        argv += ["--concurrency", str(DEFAULT_CONCURRENCY)]
    if "-Q" not in extra and "--queues" not in given:
        argv += ["--queues", f"{QUEUE},{HOOK_QUEUE}"]
    if "-l" not in extra and "--loglevel" not in given:
        argv += ["--loglevel", "INFO"]
    app.worker_main(argv + extra)


def _checked_settings() -> Any:
    """The settings, once the key, URLs, hooks and store are known good (else exit 1)."""
    from unsign_worker.ops.config_checks import producer_checks, redis_health
    from unsign_worker.worker.context import build_context

    settings = load_settings()
    try:
        worker_context = build_context(settings)  # fail fast on a bad key, URL or hook
        # the store must not forget: an evicted or unpersisted dedup key is a forgotten unsign
        for check in [*redis_health(worker_context.redis, name="UNSIGN_REDIS_URL"),
                      *producer_checks(worker_context.redis, settings.key_prefix)]:
            if check.status != "ok":
                click.echo(f"WARNING {check.name}: {check.message}", err=True)
        worker_context.close()
    except Exception as exc:
        fail(f"cannot start the worker: {exc}")
    return settings


def _option(args: list[str], short: str, long: str) -> str | None:
    """The value of ``short X``, ``long X`` or ``long=X`` on the command line, or None."""
    for i, arg in enumerate(args):
        if arg in (short, long):
            return args[i + 1] if i + 1 < len(args) else ""
        if arg.startswith(f"{long}="):
            return arg.split("=", 1)[1]
    return None


def _pool_given(args: list[str]) -> str | None:
    """The pool named on the command line (``-P X``, ``--pool X``, ``--pool=X``), or None."""
    return _option(args, "-P", "--pool")


def _take_processes(args: list[str]) -> tuple[int | None, list[str]]:
    """``--processes N`` (ours, not Celery's) and the other arguments."""
    rest: list[str] = []
    found: str | None = None
    items = iter(args)
    for arg in items:
        if arg == "--processes":
            found = next(items, "")
        elif arg.startswith("--processes="):
            found = arg.split("=", 1)[1]
        else:
            rest.append(arg)
    if found is None:
        return None, rest
    if not found.isdigit() or int(found) < 1:
        fail(f"--processes: {found!r} is not a whole number of at least 1")
    return int(found), rest


def _supervise(count: int, args: list[str]) -> int:
    """Run ``count`` worker processes, each with its own hostname (worker/processes.py)."""
    _checked_settings()  # a bad environment is said once, before anything starts
    given = _option(args, "-n", "--hostname")
    rest, items = [], iter(args)
    for arg in items:
        if arg in ("-n", "--hostname"):
            next(items, None)
        elif not arg.startswith("--hostname="):
            rest.append(arg)
    env = dict(os.environ)
    if _pool_given(rest) is None:
        rest = ["--pool", DEFAULT_POOL, *rest]
        env.setdefault("UNSIGN_HTTP_POOL_SIZE", str(_concurrency(rest) or DEFAULT_CONCURRENCY))
    return supervise(hostnames(count, given), rest, env)


def _exec_with_pool(args: list[str]) -> None:
    """Start this command again with ``--pool gevent`` on its command line.

    gevent must patch sockets, threads and SSL before anything imports them, which only the
    package's first import does when it sees the pool on the command line
    (``unsign_worker.cli``); by the time a default is chosen here, those modules are loaded.
    ``exec`` keeps the process id, so supervisors and signals see one process.
    """
    env = dict(os.environ)
    # one kept-alive gateway connection per slot, whatever the concurrency given
    env.setdefault("UNSIGN_HTTP_POOL_SIZE", str(_concurrency(args) or DEFAULT_CONCURRENCY))
    argv = [sys.executable, "-m", "unsign_worker", "worker", "--pool", DEFAULT_POOL, *args]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, argv, env)


def _concurrency(args: list[str]) -> int | None:
    for i, arg in enumerate(args):
        value = None
        if arg in ("-c", "--concurrency") and i + 1 < len(args):
            value = args[i + 1]
        elif arg.startswith("--concurrency="):
            value = arg.split("=", 1)[1]
        if value is not None:
            return int(value) if value.isdigit() else None
    return None


def register(group: click.Group) -> None:
    group.add_command(worker_cmd)
