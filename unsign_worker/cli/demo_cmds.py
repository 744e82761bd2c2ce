"""``unsign-worker demo``: a whole campaign on this machine, against the gateway emulator.

``make demo`` runs it with a Redis found or started by ``scripts/with_redis.py``. Steps: clear
the demo's own keys (prefix ``unsign-demo:``), seed a data set, start the emulator with a
realistic mix of faults over HTTPS (a sandbox PKI kept in the workdir; the workers trust its root
through ``ALIPAY_CA_BUNDLE``, outside sandbox mode, as production does: see
:mod:`unsign_worker.demo.gateway`), start workers and Flower, run the campaign with its live
progress bar, then show the summary, the dead-letter queue by code with the advice for each, and
the report file, and where its keys are (:mod:`unsign_worker.demo.hints`: a private Redis
that ``with_redis.py`` started stops with the demo). Ctrl-C at any point stops everything the
demo started, and only that (see :mod:`unsign_worker.demo.processes`).
"""

from __future__ import annotations

import os
import secrets
import shlex
import shutil
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from unsign_worker.cli._sandbox import (
    BIN,
    SANDBOX_WORKER_ENV,
    child_env,
    process_options,
    say,
    start_emulator,
    start_web,
    start_workers,
)
from unsign_worker.demo.data import SeededFiles, describe_mix, dlq_by_code, seed_files
from unsign_worker.demo.gateway import GatewayLink, prepare_tls
from unsign_worker.demo.hints import PRIVATE_REDIS_VARIABLE, keys_hint
from unsign_worker.demo.processes import (
    Child,
    DemoError,
    Supervisor,
    delete_prefix,
    reap_leftovers,
)
from unsign_worker.store.keys import Keys

DEMO_PREFIX = "unsign-demo:"
DEMO_CAMPAIGN = "demo"
DEMO_USER = "demo"
#: The campaign's global rate limit, jobs/s: slow enough to watch the progress bar and Flower.
DEMO_RATE = 80
#: Seconds ``campaign report`` gets to write the report.
REPORT_TIMEOUT_SECONDS = 300.0


@dataclass(frozen=True)
class DemoOptions:
    count: int
    workers: int
    concurrency: int
    flower_port: int
    workdir: Path
    seed: int
    keep: bool
    rate: int = 0
    prefix: str = DEMO_PREFIX
    console_port: int = 5560
    #: plain HTTP and sandbox mode instead of TLS
    plain_http: bool = False


def _show_dlq(client: Any, keys: Keys) -> None:
    """Print the dead-letter queue grouped by code, with the advice for each."""
    groups = dlq_by_code(client, keys)
    click.echo()
    if not groups:
        click.echo(click.style("Dead-letter queue: empty", bold=True))
        return
    total = sum(g.jobs for g in groups)
    click.echo(click.style(f"Dead-letter queue: {total} jobs need a human", bold=True))
    for group in groups:
        click.echo(f"  {click.style(group.code, fg='yellow')} x{group.jobs}: {group.meaning}")
        click.echo(f"      what to do: {group.advice}")
    click.echo("  In production: 'unsign-worker dlq list' to inspect, "
               "'unsign-worker dlq requeue --note ...' once the cause is fixed.")


def _run_campaign(sup: Supervisor, env: dict[str, str], campaign: Path, opts: DemoOptions
                  ) -> Child:
    argv = [str(BIN / "unsign-worker"), "campaign", "run", str(campaign), "--name",
            DEMO_CAMPAIGN, "--rate", f"{opts.rate}/s"]
    say("campaign", " ".join(["unsign-worker", *argv[1:]]))
    child = sup.start("campaign run", argv, env, stop_signal=signal.SIGINT)
    while child.proc.poll() is None:
        sup.check(ignore=[child])
        time.sleep(0.3)
    if child.proc.returncode not in (0, 3):  # 3: finished, with dead-lettered/rejected jobs
        raise DemoError(f"'campaign run' failed (exit {child.proc.returncode})")
    return child


def _report(env: dict[str, str], client: Any, keys: Keys, opts: DemoOptions) -> Path | None:
    import subprocess

    newest = client.zrevrange(keys.campaigns, 0, 0)
    if not newest:
        return None
    out = opts.workdir / "report.csv"
    run = subprocess.run([str(BIN / "unsign-worker"), "campaign", "report", newest[0].decode(),
                          "--out", str(out)], env=env, capture_output=True, text=True,
                         timeout=REPORT_TIMEOUT_SECONDS, start_new_session=True)
    return out if run.returncode == 0 and out.exists() else None


def _start_emulator(sup: Supervisor, env: dict[str, str], files: SeededFiles, key_file: Path,
                    opts: DemoOptions) -> GatewayLink:
    """Start the emulator (over HTTPS with the demo's sandbox PKI, unless ``--plain-http``)."""
    trust = None if opts.plain_http else prepare_tls(opts.workdir)
    link = start_emulator(sup, env, agreements=files.agreements, key_file=key_file, trust=trust,
                          log=opts.workdir / "logs" / "emulator.log", scenario=files.scenario)
    say("emulator", f"{link.url} (20-50 ms per request, ~2% random faults, scripted "
                     "escalations)")
    say("tls", link.describe())
    return link


def run_demo(opts: DemoOptions) -> int:
    import redis

    from unsign_worker.cli.common import load_settings

    opts.workdir.mkdir(parents=True, exist_ok=True)
    (opts.workdir / "logs").mkdir(exist_ok=True)
    pidfile = opts.workdir / "pids.json"
    if reap_leftovers(pidfile):
        say("cleanup", "stopped processes left by an earlier demo")
    sup = Supervisor(pidfile)
    redis_url = load_settings().redis_url
    client = redis.Redis.from_url(redis_url, socket_connect_timeout=5)
    keys = Keys(opts.prefix)
    logs = opts.workdir / "logs"
    click.echo(click.style("unsign-worker demo: a whole unsign campaign against the gateway "
                           "emulator, on this machine", bold=True)
               + " (Ctrl-C stops everything it started)")
    try:
        client.ping()
        cleared = delete_prefix(client, opts.prefix)
        say("redis", f"{_safe(redis_url)}; keys under {opts.prefix!r} "
                      f"({'cleared ' + str(cleared) + ' from the last run' if cleared else 'new'})")

        files = seed_files(opts.workdir, count=opts.count, seed=opts.seed)
        campaign = files.campaign
        say("data", f"{opts.count} rows in {campaign} "
                     f"({describe_mix(files.mix, opts.count)})")

        key_file = opts.workdir / "demo.key"
        key_file.write_text(secrets.token_hex(16), encoding="utf-8")
        key_file.chmod(0o600)
        link = _start_emulator(sup, child_env(redis_url, opts.prefix), files, key_file, opts)

        worker_env = child_env(redis_url, opts.prefix, ALIPAY_PARTNER=link.partner,
                               ALIPAY_KEY_FILE=str(key_file), **link.env(), **SANDBOX_WORKER_ENV)
        names = start_workers(sup, worker_env, client, keys, name="demo", count=opts.workers,
                              concurrency=opts.concurrency, logs=logs)
        say("workers", f"{opts.workers} x {opts.concurrency} threads ({', '.join(names)}); "
                       f"logs in {logs}/")

        password = secrets.token_urlsafe(12)
        login = {"user": DEMO_USER, "password": password, "logs": logs}
        flower_url = start_web(sup, worker_env, "flower", port=opts.flower_port, **login)
        say("flower", f"{flower_url}  user {DEMO_USER}  password {password}")
        console_url = start_web(sup, worker_env, "console", port=opts.console_port, **login)
        say("console", f"{console_url}  user {DEMO_USER}  password {password} (escalations, "
                       "campaigns, health)")

        ran = _run_campaign(sup, worker_env, campaign, opts)
        traffic = link.traffic()
        if traffic:
            say("gateway", f"the emulator answered {traffic}")
        _show_dlq(client, keys)
        report = _report(worker_env, client, keys, opts)
        click.echo()
        if report:
            click.echo(f"Report (one row per input row): {report}")
        click.echo(f"Refused rows: {campaign}.rejects.csv   Logs: {logs}/   "
                   f"Data: {opts.workdir}/")
        click.echo(keys_hint(redis_url, opts.prefix, program=_program(), keep=opts.keep,
                             private=os.environ.get(PRIVATE_REDIS_VARIABLE) == "1"))
        click.echo(f"Console: {console_url}  user {DEMO_USER}  password {password}")
        if opts.keep:
            trusted = (f" (trust it: export ALIPAY_CA_BUNDLE={link.trust.ca_file})"
                       if link.trust else " (plain HTTP)")
            click.echo(f"Still running until Ctrl-C: the emulator at {link.url}{trusted}, "
                       f"{opts.workers} worker(s), Flower at {flower_url} and the console "
                       f"at {console_url} (user {DEMO_USER}, password {password}).")
            click.echo("Press Ctrl-C to stop everything.")
            try:
                while True:
                    sup.check(ignore=[ran])  # the campaign run has ended, on purpose
                    time.sleep(1)
            except KeyboardInterrupt:  # the normal end of a kept demo
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                click.echo("\nCtrl-C: stopping what the demo started", err=True)
                return 0
        click.echo("The demo stops its processes now; 'make demo KEEP=1' (or 'unsign-worker demo "
                   "--keep') keeps Flower and the console up to explore.")
        return 0
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        click.echo("\ninterrupted: stopping what the demo started", err=True)
        return 130
    except (DemoError, redis.RedisError, OSError) as exc:
        click.echo(f"demo failed: {exc}", err=True)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the cleanup
        stopped = sup.stop()
        if stopped:
            click.echo(f"stopped: {', '.join(stopped)}", err=True)


def _program() -> str:
    """How a shell here calls this ``unsign-worker``: by name when PATH finds it, else by its
    path (relative to the working folder when inside it, as ``.venv/bin/unsign-worker``)."""
    program = BIN / "unsign-worker"
    found = shutil.which("unsign-worker")
    if found and Path(found).resolve() == program.resolve():
        return "unsign-worker"
    try:
        shown = str(program.relative_to(Path.cwd()))
    except ValueError:
        shown = str(program)
    return shlex.quote(shown)


def _safe(url: str) -> str:
    from unsign_worker.protocol.hosts import redact_url

    return redact_url(url)


@click.command("demo", epilog="Example: make demo   (or: unsign-worker demo --count 500)")
@click.option("--count", default=3000, show_default=True, type=click.IntRange(min=10),
              help="Rows in the demo campaign.")
@process_options(workers=2)
@click.option("--workdir", default=".demo", show_default=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="Where data, logs and the report go.")
@click.option("--seed", default=2024, show_default=True, type=int,
              help="Random seed of the data set and faults.")
@click.option("--rate", default=DEMO_RATE, show_default=True, type=click.IntRange(min=0),
              help="The campaign's global rate limit, jobs per second (0: unlimited).")
@click.option("--keep", is_flag=True, help="Keep the emulator, the workers, Flower and the "
              "console up after the campaign until Ctrl-C.")
@click.option("--plain-http", is_flag=True, help="Serve the emulator in plain HTTP and run the "
              "workers in sandbox mode (UNSIGN_SANDBOX=1) instead of over TLS with a private "
              "CA, as production does.")
@click.option("--prefix", default=DEMO_PREFIX, hidden=True,
              help="Key prefix of the demo (cleared at start).")
def demo_cmd(count: int, workers: int, concurrency: int, flower_port: int, workdir: Path,
             seed: int, rate: int, keep: bool, console_port: int, plain_http: bool,
             prefix: str) -> None:
    """Run a whole sample campaign against the gateway emulator and show the results.

    Needs a Redis (UNSIGN_REDIS_URL; 'make demo' finds or starts one). Uses only keys under
    'unsign-demo:' and clears them at the next run. The emulator serves HTTPS with a private CA
    kept in WORKDIR/tls, which the workers trust through ALIPAY_CA_BUNDLE, outside sandbox mode
    (--plain-http: plain HTTP, sandbox mode). Ctrl-C stops everything it started.
    """
    def on_term(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    code = run_demo(DemoOptions(count=count, workers=workers, concurrency=concurrency,
                                flower_port=flower_port, workdir=workdir, seed=seed, keep=keep,
                                rate=rate, prefix=prefix, console_port=console_port,
                                plain_http=plain_http))
    if code:
        raise click.exceptions.Exit(code)


def register(group: click.Group) -> None:
    group.add_command(demo_cmd)
