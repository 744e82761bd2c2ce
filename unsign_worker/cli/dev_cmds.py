"""``unsign-worker dev``: the whole service on this machine, supervised, for a second shell.

One command starts, in order: a Redis on ``UNSIGN_REDIS_URL``'s address when none answers there
(:mod:`unsign_worker.demo.local_redis`), a private CA and the emulator's certificate, a seeded
data set, the emulator over HTTPS, the workers, Flower and the console, each writing to its own
log in the folder (``.dev/`` by default), nothing of theirs to the terminal. Once all are ready
it prints the addresses and where the credentials are, and writes ``<folder>/env``
(:mod:`unsign_worker.demo.env_file`), which a second shell sources to run ``enqueue``,
``campaign run`` or ``status`` against the sandbox. Then it watches: a child that exits is
named with the end of its log, and everything else is stopped (exit 1); Ctrl-C or SIGTERM stops
everything it started, the Redis last (see :mod:`unsign_worker.demo.processes`). Logs, data and
the env file stay.
"""

from __future__ import annotations

import os
import secrets
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
from redis import RedisError

from unsign_worker.cli import _sandbox as sandbox
from unsign_worker.cli._sandbox import process_options, say
from unsign_worker.demo.env_file import export_lines, write_private
from unsign_worker.demo.gateway import prepare_tls
from unsign_worker.demo.local_redis import (
    answers,
    local_address,
    server_argv,
    server_binary,
)
from unsign_worker.demo.processes import (
    Child,
    DemoError,
    Supervisor,
    reap_leftovers,
    wait_until,
)
from unsign_worker.emulator.errors import EmulatorConfigError
from unsign_worker.emulator.seed import DEFAULT_PARTNER
from unsign_worker.protocol.hosts import redact_url
from unsign_worker.settings import Settings
from unsign_worker.store.keys import Keys

#: The login of Flower and the console when ``--user`` is not given.
DEV_USER = "dev"
#: The variable that gives the password of Flower and the console (else one is drawn).
PASSWORD_VARIABLE = "UNSIGN_DEV_PASSWORD"
#: Seconds between two looks at the children once everything is up.
WATCH_INTERVAL_SECONDS = 0.5
#: Settings a second shell may hold that would contradict the env file's.
CONTRADICTING = ("ALIPAY_KEY_FILE", "UNSIGN_BROKER_URL", "UNSIGN_SANDBOX")


@dataclass(frozen=True)
class DevOptions:
    folder: Path
    count: int
    seed: int
    mix: str
    partner: str
    workers: int
    concurrency: int
    gateway_port: int
    flower_port: int
    console_port: int
    user: str


@dataclass(frozen=True)
class Sandbox:
    """What a second shell needs to know of the running sandbox."""

    redis_url: str
    prefix: str
    partner: str
    key: str = field(repr=False)
    gateway: dict[str, str]
    flower_url: str
    console_url: str


def _redis(sup: Supervisor, url: str, folder: Path) -> Child | None:
    """The Redis of ``url``: None when it answers, else the ``redis-server`` started for it
    (its data in ``folder/redis``, its log in ``folder/logs/redis.log``)."""
    if answers(url):
        say("redis", f"{redact_url(url)} (answers PING: used as it is)")
        return None
    address = local_address(url)
    binary = server_binary()
    data = folder / "redis"
    data.mkdir(exist_ok=True)
    child = sup.start("redis", server_argv(binary, address, data), dict(os.environ),
                      log=folder / "logs" / "redis.log")
    wait_until(lambda: answers(url), timeout=sandbox.READY_TIMEOUT_SECONDS, what="redis-server",
               check=sup.check)
    say("redis", f"{redact_url(url)} (started here, stopped with this command; data in "
                 f"{_shown(data)}/)")
    return child


def _seed(opts: DevOptions, folder: Path) -> Path:
    """Write the data set (agreements and campaign, as ``emulator seed`` does); the agreements
    file."""
    from unsign_worker.emulator.files import write_agreements, write_campaign
    from unsign_worker.emulator.seed import generate, resolve_mix
    from unsign_worker.protocol.param_rules import validate_partner

    problems = validate_partner(opts.partner)
    if problems:
        raise DemoError(f"--partner: {problems[0].message}")
    data = generate(opts.count, resolve_mix(opts.mix), partner=opts.partner, seed=opts.seed)
    agreements, campaign = folder / "agreements.json", folder / "campaign.csv"
    write_agreements(str(agreements), data)
    write_campaign(str(campaign), data)
    first = data.rows[0]["customer_code"] if data.rows else ""
    say("data", f"{len(data.rows)} rows in {_shown(campaign)}, their agreements in "
                f"{_shown(agreements)} "
                f"(--mix {opts.mix}, --seed {data.seed}; the first: customer code {first})")
    return agreements


def _key_file(folder: Path) -> tuple[str, Path]:
    """The MD5 key (``ALIPAY_KEY``, else drawn) and the private file the children read it from."""
    key = os.environ.get("ALIPAY_KEY", "").strip() or secrets.token_hex(16)
    path = folder / "alipay.key"
    write_private(path, key)
    return key, path


def _write_env(folder: Path, box: Sandbox) -> Path:
    values = {"UNSIGN_REDIS_URL": box.redis_url, "UNSIGN_KEY_PREFIX": box.prefix,
              "ALIPAY_PARTNER": box.partner, "ALIPAY_KEY": box.key,
              **{k: v for k, v in box.gateway.items() if v},
              "UNSIGN_DEV_FLOWER_URL": box.flower_url, "UNSIGN_DEV_CONSOLE_URL": box.console_url}
    path = folder / "env"
    write_private(path, export_lines(
        values, path_dir=sandbox.BIN, unset=CONTRADICTING,
        comment="The settings of the sandbox 'unsign-worker dev' runs, for another shell:\n"
                f". {path}"))
    return path


def _start(sup: Supervisor, opts: DevOptions, folder: Path, settings: Settings) -> Sandbox:
    """Seed the data set, then start the emulator, the workers, Flower and the console, each
    once the one before is ready."""
    from unsign_worker.store.sentinel import connect

    logs = folder / "logs"
    agreements = _seed(opts, folder)
    key, key_file = _key_file(folder)
    base_env = sandbox.child_env(settings.redis_url, settings.key_prefix)
    trust = prepare_tls(folder)
    link = sandbox.start_emulator(sup, base_env, agreements=agreements, key_file=key_file,
                                  trust=trust, log=logs / "emulator.log", port=opts.gateway_port)
    say("gateway", f"{link.url} (the emulator, partner {link.partner}), its certificate "
                   f"from a private CA {'made now' if trust.made else 'kept'}: "
                   f"{_shown(trust.ca_file)}")
    worker_env = {**base_env, "ALIPAY_PARTNER": link.partner, "ALIPAY_KEY_FILE": str(key_file),
                  **link.env(), **sandbox.SANDBOX_WORKER_ENV}
    client = connect(settings.redis_url, socket_connect_timeout=5)
    names = sandbox.start_workers(sup, worker_env, client, Keys(settings.key_prefix),
                                  name="dev", count=opts.workers,
                                  concurrency=opts.concurrency, logs=logs)
    say("workers", f"{opts.workers} x {opts.concurrency} threads ({', '.join(names)})")
    password = os.environ.get(PASSWORD_VARIABLE) or secrets.token_urlsafe(12)
    login = {"user": opts.user, "password": password, "logs": logs}
    urls = {}
    for command, port in (("flower", opts.flower_port), ("console", opts.console_port)):
        urls[command] = sandbox.start_web(sup, worker_env, command, port=port, **login)
        say(command, f"{urls[command]}  user {opts.user}  password {password}")
    return Sandbox(settings.redis_url, settings.key_prefix, link.partner, key, link.env(),
                   urls["flower"], urls["console"])


def run_dev(opts: DevOptions) -> int:
    from unsign_worker.cli.common import load_settings

    begun = time.monotonic()
    folder = opts.folder.absolute()
    logs = folder / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    (folder / "env").unlink(missing_ok=True)  # it names the sandbox of an earlier run
    pidfile = folder / "pids.json"
    if reap_leftovers(pidfile):
        say("cleanup", "stopped processes left by an earlier run")
    sup = Supervisor(pidfile)
    settings = load_settings()
    click.echo(click.style("unsign-worker dev: the service on this machine", bold=True)
               + f" (logs in {_shown(logs)}/; Ctrl-C stops everything it started)")
    redis_child: Child | None = None
    ready = False
    try:
        redis_child = _redis(sup, settings.redis_url, folder)
        env_file = _write_env(folder, _start(sup, opts, folder, settings))
        say("env", f"{_shown(env_file)} (mode 0600: the gateway, partner, key and Redis "
                   "settings)")
        say("ready", f"in {time.monotonic() - begun:.1f} s. In another shell, here: "
                     f". {_shown(env_file)}   then: unsign-worker status")
        ready = True
        while True:
            sup.check()
            time.sleep(WATCH_INTERVAL_SECONDS)
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        click.echo("\nstopping everything 'unsign-worker dev' started", err=True)
        return 0 if ready else 130
    except DemoError as exc:
        click.echo(f"dev: {exc}", err=True)
        return 1
    except (OSError, RedisError, EmulatorConfigError) as exc:
        click.echo(f"dev failed: {exc}", err=True)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the cleanup
        stopped = sup.stop(keep=[redis_child] if redis_child else [])
        stopped += sup.stop()  # the Redis last: the others use it until they end
        if stopped:
            click.echo(f"stopped: {', '.join(stopped)}; logs stay in {_shown(logs)}/", err=True)


def _shown(path: Path) -> str:
    """``path`` relative to the working folder when inside it (as ``.dev/env``)."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


@click.command("dev", epilog="Example: make dev   (or: unsign-worker dev --count 1000 --seed 7)")
@click.option("--dir", "folder", default=".dev", show_default=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="Where the logs, the data set, the CA, the Redis data and the env file go.")
@click.option("--count", default=100, show_default=True, type=click.IntRange(min=1),
              help="Rows of the seeded campaign (one agreement each).")
@click.option("--seed", default=1, show_default=True, type=click.IntRange(0, 99999),
              help="Seed of the data set: another seed, other identities.")
@click.option("--mix", default="clean", show_default=True,
              help="Outcome mix of the data set: clean, demo, mixed or a JSON file "
                   "(see 'emulator seed').")
@click.option("--partner", envvar="ALIPAY_PARTNER", default=DEFAULT_PARTNER,
              show_default=True, help="The sandbox partner ID [env ALIPAY_PARTNER]. The MD5 key "
              "is ALIPAY_KEY when set, else drawn at random.")
@process_options(workers=1)
@click.option("--gateway-port", default=8010, show_default=True, type=int,
              help="The emulator's port (any free port if taken).")
@click.option("--user", default=DEV_USER, show_default=True,
              help=f"Login of Flower and the console; its password is {PASSWORD_VARIABLE} when "
                   "set, else drawn at random.")
def dev_cmd(**options: Any) -> None:
    """Run the service on this machine: Redis, the emulator, workers, Flower and the console.

    Uses the Redis of UNSIGN_REDIS_URL (default 127.0.0.1:6379) if it answers, else starts
    redis-server there. Each process logs to DIR/logs; the terminal shows the addresses and
    credentials, and DIR/env holds the settings another shell sources ('. .dev/env') to run
    enqueue, campaign run or status. Ctrl-C stops everything it started.
    """
    def on_term(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    code = run_dev(DevOptions(**options))
    if code:
        raise click.exceptions.Exit(code)


def register(group: click.Group) -> None:
    group.add_command(dev_cmd)
