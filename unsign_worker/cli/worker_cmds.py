"""``unsign-worker worker``, ``breaker``, ``audit export`` and ``job show``."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
from typing import Any

import click

from unsign_worker.cli.common import fail, load_settings, output_file, redis_for
from unsign_worker.store.keys import HOOK_QUEUE, QUEUE, Keys
from unsign_worker.store.states import BreakerStatus

#: Default pool and concurrency of ``unsign-worker worker``: a job is one HTTP call waiting on
#: the gateway, so greenlets (no lock contention between OS threads, about a third less CPU per
#: job than threads in docs/performance.md) and enough slots to keep 100 requests in flight.
DEFAULT_POOL = "gevent"
DEFAULT_CONCURRENCY = 100
#: Signals passed on to every worker process of ``--processes N`` (SIGINT as SIGTERM: a Ctrl-C
#: reaches them from the terminal already, and a second SIGINT would be a cold shutdown).
FORWARDED = {signal.SIGTERM: signal.SIGTERM, signal.SIGINT: signal.SIGTERM,
             signal.SIGQUIT: signal.SIGQUIT, signal.SIGHUP: signal.SIGTERM}


def default_processes() -> int:
    """One worker process per core this process may run on: one Python process runs on one
    core at a time, and a job's CPU (the Celery consumer, the Redis round trips) is what bounds
    a worker once its slots wait on the gateway (docs/performance.md)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


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
    task events on, and one worker process per core (``--processes N`` to choose; a worker
    given a --hostname is one process unless --processes says otherwise). The processes are
    named worker1@HOST, worker2@HOST, ... (NAME-1@..., NAME-2@... with --hostname NAME@...);
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


def _checked_settings() -> Any:
    """The settings, once the key, URLs, hooks and store are known good (else exit 1)."""
    from unsign_worker.ops.config_checks import CheckStatus, redis_health
    from unsign_worker.worker.context import build_context

    settings = load_settings()
    try:
        worker_context = build_context(settings)  # fail fast on a bad key, URL or hook
        # the store must not forget: an evicted or unpersisted dedup key is a forgotten unsign
        for check in redis_health(worker_context.redis, name="UNSIGN_REDIS_URL"):
            if check.status != CheckStatus.OK:
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


def _hostnames(count: int, args: list[str]) -> tuple[list[str], list[str]]:
    """One hostname per process (``--hostname NAME@DOMAIN`` -> ``NAME-1@DOMAIN``, ...), and
    the arguments without the hostname."""
    given = _option(args, "-n", "--hostname")
    rest, items = [], iter(args)
    for arg in items:
        if arg in ("-n", "--hostname"):
            next(items, None)
        elif not arg.startswith("--hostname="):
            rest.append(arg)
    if given is None:
        return [f"worker{i}@%h" for i in range(1, count + 1)], rest
    node, at, domain = given.partition("@")
    return [f"{node}-{i}{at}{domain}" for i in range(1, count + 1)], rest


def _supervise(count: int, args: list[str]) -> int:
    """Run ``count`` worker processes and wait for them; the worst exit status.

    Each is this command with ``--processes 1`` and its own hostname. They stay in this
    process group (a signal to the group reaches them all) and get SIGTERM if this process
    dies (Linux). The first to stop for any reason but a signal from here stops the others: the
    service manager sees one worker that stopped, and restarts it whole.
    """
    _checked_settings()  # a bad environment is said once, before anything starts
    hosts, rest = _hostnames(count, args)
    env = dict(os.environ)
    if _pool_given(rest) is None:
        rest = ["--pool", DEFAULT_POOL, *rest]
        env.setdefault("UNSIGN_HTTP_POOL_SIZE", str(_concurrency(rest) or DEFAULT_CONCURRENCY))
    children = [subprocess.Popen([sys.executable, "-m", "unsign_worker", "worker",
                                  "--processes", "1", "--hostname", host, *rest],
                                 env=env, preexec_fn=_die_with_parent)
                for host in hosts]
    stopping = False

    def forward(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            if child.poll() is None:
                child.send_signal(FORWARDED.get(signal.Signals(signum), signal.SIGTERM))

    for signum in FORWARDED:
        signal.signal(signum, forward)
    codes: dict[int, int] = {}
    first: int | None = None
    while len(codes) < len(children):
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        codes[pid] = os.waitstatus_to_exitcode(status)
        if not stopping:  # one stopped on its own: the others follow
            first = codes[pid] if codes[pid] >= 0 else 128 - codes[pid]
            forward(signal.SIGTERM, None)
    if first is not None:
        return first
    return max((code for code in codes.values() if code > 0), default=0)


def _die_with_parent() -> None:
    """In the child: SIGTERM when the supervising process dies (even by SIGKILL)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


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
    from unsign_worker.store.breaker import Breaker

    settings = load_settings()
    state = Breaker(redis_for(settings), Keys(settings.key_prefix), threshold=1,
                    window_seconds=1).state()
    if as_json:
        click.echo(json.dumps(state.as_dict()))
        return
    if state.state == BreakerStatus.OPEN:
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
    from unsign_worker.producers.reports import neutralise_cell

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
