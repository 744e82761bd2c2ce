"""What ``demo`` and ``dev`` share: their children's environment, and how the emulator, the
workers, Flower and the console are started under a :class:`Supervisor` and waited for.

Each child writes to its own log file; each helper returns once the child says it is ready (or
raises :class:`DemoError` naming the child and its log).
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from unsign_worker.demo.gateway import READY_PATTERN, GatewayLink, Trust, emulator_args
from unsign_worker.demo.processes import Supervisor, port_is_free, wait_for_line, wait_until
from unsign_worker.store.keys import Keys

#: Worker settings that keep a sandbox's retries short (production keeps the defaults); the
#: gateway's settings come from :class:`GatewayLink` (TLS, or sandbox mode for plain HTTP).
SANDBOX_WORKER_ENV = {"UNSIGN_RETRY_COUNTDOWN_BASE": "1", "UNSIGN_RETRY_COUNTDOWN_CAP": "10",
                      "UNSIGN_SWEEP_INTERVAL": "2", "UNSIGN_SUCCESS_HOOK": ""}
#: Seconds a process gets to say it is ready (the emulator, Flower, the console) and the
#: workers to register: a few seconds on an idle machine, many times that on a loaded one.
READY_TIMEOUT_SECONDS = 180.0
#: The folder of this ``unsign-worker``: its children are the same installation.
BIN = Path(sys.executable).parent
PROGRAM = str(BIN / "unsign-worker")


def say(step: str, text: str) -> None:
    """One line of progress: the step's name in bold, then what it did."""
    click.echo(f"{click.style(f'{step:<10}', bold=True)} {text}")
    sys.stdout.flush()


def child_env(redis_url: str, prefix: str, **extra: str) -> dict[str, str]:
    """This process's environment without any ``ALIPAY_``, ``UNSIGN_`` or ``FLOWER_`` setting
    (a child gets only the ones given), with the Redis and the key prefix."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ALIPAY_", "UNSIGN_", "FLOWER_"))}
    env.update(UNSIGN_REDIS_URL=redis_url, UNSIGN_KEY_PREFIX=prefix, PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def free_or_any(port: int) -> int:
    """``port`` when it is free on loopback, else 0 (any free port, which the child prints)."""
    return port if port and port_is_free(port) else 0


def start_emulator(sup: Supervisor, env: dict[str, str], *, agreements: Path, key_file: Path,
                   trust: Trust | None, log: Path, port: int = 0,
                   scenario: Path | None = None) -> GatewayLink:
    """Start the emulator (HTTPS with ``trust``, plain HTTP without) and wait until it serves."""
    argv = [PROGRAM, "emulator", "--port", str(free_or_any(port)), "--agreements",
            str(agreements), "--key-file", str(key_file), *emulator_args(trust)]
    if scenario is not None:
        argv += ["--scenario", str(scenario)]
    emulator = sup.start("emulator", argv, env, log=log)
    ready = wait_for_line(emulator, READY_PATTERN, timeout=READY_TIMEOUT_SECONDS)
    return GatewayLink(ready.group(1), ready.group(2), trust)


def start_workers(sup: Supervisor, env: dict[str, str], client: Any, keys: Keys, *,
                  name: str, count: int, concurrency: int, logs: Path) -> list[str]:
    """Start ``count`` worker processes and wait until each has registered; their names."""
    host = socket.gethostname()
    names = [f"{name}-w{i}@{host}" for i in range(1, count + 1)]
    for i, hostname in enumerate(names, 1):
        sup.start(f"worker {i}", [PROGRAM, "worker", "--hostname", hostname, "--concurrency",
                                  str(concurrency)], env, log=logs / f"worker-{i}.log")
    wait_until(lambda: all(client.zscore(keys.workers, n) is not None for n in names),
               timeout=READY_TIMEOUT_SECONDS, what="the workers", check=sup.check)
    return names


#: The web apps behind a login: command -> the variable that gives it its ``user:password``.
WEB_AUTH = {"flower": "FLOWER_BASIC_AUTH", "console": "UNSIGN_CONSOLE_AUTH"}


def start_web(sup: Supervisor, env: dict[str, str], command: str, *, port: int, user: str,
              password: str, logs: Path) -> str:
    """Start ``flower`` or ``console`` behind a login and wait until it serves; its URL."""
    web = sup.start(command, [PROGRAM, command, "--port", str(free_or_any(port))],
                    {**env, WEB_AUTH[command]: f"{user}:{password}"},
                    log=logs / f"{command}.log")
    return wait_for_line(web, rf"{command}: (http://\S+/) \(",
                         timeout=READY_TIMEOUT_SECONDS).group(1)


def process_options(*, workers: int) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The options of the processes ``demo`` and ``dev`` start: ``--workers`` (``workers`` by
    default), ``--concurrency``, ``--flower-port`` and ``--console-port``."""
    options = [
        click.option("--workers", default=workers, show_default=True,
                     type=click.IntRange(1, 8), help="Worker processes."),
        click.option("--concurrency", default=16, show_default=True,
                     type=click.IntRange(1, 256), help="Threads per worker."),
        click.option("--flower-port", default=5555, show_default=True, type=int,
                     help="Flower's port (any free port if taken)."),
        click.option("--console-port", default=5560, show_default=True, type=int,
                     help="The console's port (any free port if taken)."),
    ]

    def apply(fn: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):
            fn = option(fn)
        return fn
    return apply
