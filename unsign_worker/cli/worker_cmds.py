"""``unsign-worker worker``, ``breaker``, ``audit export`` and ``job show``."""

from __future__ import annotations

import csv
import json
import os
import sys
from typing import Any

import click

from unsign_worker.cli.common import fail, load_settings, output_file, redis_for
from unsign_worker.keys import HOOK_QUEUE, QUEUE, Keys

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
    task events on.
    """
    extra = list(ctx.args)
    if _pool_given(extra) is None and DEFAULT_POOL == "gevent":
        _exec_with_pool(extra)
    from unsign_worker.celery_app import create_app
    from unsign_worker.cli.config_checks import redis_health
    from unsign_worker.context import build_context

    settings = load_settings()
    try:
        worker_context = build_context(settings)  # fail fast on a bad key, URL or hook
        # the store must not forget: an evicted or unpersisted dedup key is a forgotten unsign
        for check in redis_health(worker_context.redis, name="UNSIGN_REDIS_URL"):
            if check.status != "ok":
                click.echo(f"WARNING {check.name}: {check.message}", err=True)
        worker_context.close()
    except Exception as exc:
        fail(f"cannot start the worker: {exc}")
    app = create_app(settings)
    argv = ["worker", "-E"]
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


def _pool_given(args: list[str]) -> str | None:
    """The pool named on the command line (``-P X``, ``--pool X``, ``--pool=X``), or None."""
    for i, arg in enumerate(args):
        if arg in ("-P", "--pool"):
            return args[i + 1] if i + 1 < len(args) else ""
        if arg.startswith("--pool="):
            return arg.split("=", 1)[1]
    return None


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


@click.group("breaker")
def breaker_group() -> None:
    """The circuit breaker that stops the line on integration-wide errors."""


@breaker_group.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def breaker_status(as_json: bool) -> None:
    """Show whether the breaker is open, and why."""
    from unsign_worker.breaker import Breaker

    settings = load_settings()
    state = Breaker(redis_for(settings), Keys(settings.key_prefix), threshold=1,
                    window_seconds=1).state()
    if as_json:
        click.echo(json.dumps(state.as_dict()))
        return
    if state.state == "open":
        click.echo(f"breaker OPEN since {state.opened_at}: {state.code} ({state.reason})")
    else:
        click.echo("breaker closed")


@breaker_group.command("reset")
def breaker_reset() -> None:
    """Close the breaker by hand once the integration is fixed; parked jobs resume."""
    from unsign_worker.cli._ops import operations, operator

    operations(load_settings()).reset_breaker(by=operator())
    click.echo("breaker closed; parked jobs resume at their next look")


@click.group("audit")
def audit_group() -> None:
    """The audit log of every attempt."""


AUDIT_COLUMNS = ("id", "time", "job_id", "identity", "attempt", "params", "http_status", "code",
                 "duration_ms", "outcome", "campaign", "reference", "reason", "original")


@audit_group.command("export")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl",
              show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, writable=True), default="-",
              help="Output file (default: standard output).")
@click.option("--campaign", default="", help="Only this campaign's attempts.")
def audit_export(fmt: str, out: str, campaign: str) -> None:
    """Write the audit log as JSON lines or CSV (personal data masked).

    Example: unsign-worker audit export --format csv --out audit.csv
    """
    from unsign_worker.reports import neutralise_cell

    settings = load_settings()
    client = redis_for(settings)
    stream = Keys(settings.key_prefix).audit
    handle = sys.stdout if out == "-" else output_file(out)
    try:
        writer = csv.writer(handle) if fmt == "csv" else None
        if writer:
            writer.writerow(AUDIT_COLUMNS)
        last = "-"
        while True:
            batch = client.xrange(stream, min=last, max="+", count=1000)
            if last != "-":
                batch = batch[1:]
            if not batch:
                break
            for entry_id, fields in batch:
                row: dict[str, Any] = json.loads(fields[b"data"])
                row["id"] = entry_id.decode()
                if campaign and row.get("campaign") != campaign:
                    continue
                if writer:
                    writer.writerow([neutralise_cell(_cell(row.get(c))) for c in AUDIT_COLUMNS])
                else:
                    handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            last = batch[-1][0].decode()
    finally:
        if handle is not sys.stdout:
            handle.close()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def register(group: click.Group) -> None:
    group.add_command(worker_cmd)
    group.add_command(breaker_group)
    group.add_command(audit_group)
