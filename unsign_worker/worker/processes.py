"""Several worker processes run as one: ``unsign-worker worker --processes N``.

A Python process runs on one core at a time, and a job's CPU (the Celery consumer, the Redis
round trips) is what bounds a worker once its slots wait on the gateway
(docs/performance.md): the default is one worker process per core. :func:`supervise` starts
them, passes signals on, and stops them all when one stops, so a service manager sees one
worker that stopped and restarts it whole.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

#: Signals passed on to every worker process (SIGINT as SIGTERM: a Ctrl-C reaches them from
#: the terminal already, and a second SIGINT would be a cold shutdown).
FORWARDED = {signal.SIGTERM: signal.SIGTERM, signal.SIGINT: signal.SIGTERM,
             signal.SIGQUIT: signal.SIGQUIT, signal.SIGHUP: signal.SIGTERM}


def default_processes() -> int:
    """One worker process per core this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def hostnames(count: int, given: str | None) -> list[str]:
    """One hostname per process: ``worker1@%h``, ... or, from ``NAME@DOMAIN``,
    ``NAME-1@DOMAIN``, ..."""
    if given is None:
        return [f"worker{i}@%h" for i in range(1, count + 1)]
    node, at, domain = given.partition("@")
    return [f"{node}-{i}{at}{domain}" for i in range(1, count + 1)]


def supervise(hosts: Sequence[str], args: Sequence[str], env: dict[str, str]) -> int:
    """Run one ``unsign-worker worker --processes 1 --hostname HOST ARGS`` per host and wait
    for them; the exit status of the first to stop on its own, else the worst.

    They stay in this process group (a signal to the group reaches them all) and get SIGTERM
    if this process dies (Linux). The first to stop for any reason but a signal from here stops
    the others.
    """
    children = [subprocess.Popen([sys.executable, "-m", "unsign_worker", "worker",
                                  "--processes", "1", "--hostname", host, *args],
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
