"""A command that starts processes (``unsign-worker demo``, ``unsign-worker dev``, a shell
that runs one) started as a user would, in its own process group as a terminal's foreground job,
and every process it was seen to start.

Timing: ``unsign-worker dev`` is ready in a few seconds on an idle 2-core machine (five processes
import their stack), many times that on a loaded one; the waits below are far above that.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

import psutil

from tests.plugins.worker_fixtures import wait_for

#: Seconds the sandbox gets to say it is ready on a loaded machine.
READY_SECONDS = 420
#: Seconds it gets to stop everything after Ctrl-C or a child's death (20 s of grace, then kills).
STOP_SECONDS = 180
#: The line that says every process answers.
READY_LINE = re.compile(r"^ready +in ([\d.]+) s\.", re.MULTILINE)


def clean_env(**extra: str) -> dict[str, str]:
    """A user's environment: none of the project's settings, nor those of a ``make`` above."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ALIPAY_", "UNSIGN_", "FLOWER_"))
           and k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    env.update(COLUMNS="120", **extra)
    return env


def _foreground() -> None:
    """In the child: Ctrl-C as a terminal's foreground job has it, even when the tests run as a
    background job (whose shell ignores SIGINT, and an ignored signal stays ignored across
    exec)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class CommandRun:
    """A running ``argv`` whose output goes to ``out``."""

    def __init__(self, argv: Sequence[str], *, cwd: Path, env: Mapping[str, str],
                 out: Path) -> None:
        self.out = out
        with open(out, "wb") as sink:
            self.proc = subprocess.Popen(list(argv), cwd=cwd, env=dict(env), stdout=sink,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True, preexec_fn=_foreground)
        self.seen: set[int] = set()

    def text(self) -> str:
        return self.out.read_text(encoding="utf-8", errors="replace")

    def watch(self) -> bool:
        """Record the run's descendants; True once it has exited."""
        try:
            self.seen.update(p.pid for p in psutil.Process(self.proc.pid).children(recursive=True))
        except psutil.NoSuchProcess:
            pass
        return self.proc.poll() is not None

    def wait_ready(self) -> float:
        """Wait for ``unsign-worker dev``'s ready line (failing if the run ends first); the
        seconds it printed."""
        found = wait_for(lambda: self.watch() or READY_LINE.search(self.text()),
                         timeout=READY_SECONDS, interval=0.2, what="unsign-worker dev's ready line")
        assert self.proc.poll() is None, f"it ended before it was ready:\n{self.text()}"
        assert isinstance(found, re.Match)
        self.watch()
        return float(found.group(1))

    def interrupt(self) -> None:
        """Ctrl-C, as a terminal sends it: SIGINT to the whole foreground process group."""
        os.killpg(self.proc.pid, signal.SIGINT)

    def wait_end(self) -> int:
        wait_for(self.watch, timeout=STOP_SECONDS, interval=0.2, what="unsign-worker dev to end")
        return self.proc.returncode

    def started(self, word: str) -> psutil.Process:
        """The process it started whose command line holds ``word``."""
        for pid in sorted(self.seen):
            try:
                proc = psutil.Process(pid)
                if word in proc.cmdline():
                    return proc
            except psutil.NoSuchProcess:
                continue
        raise AssertionError(f"no process of the run has {word!r} in its command line")

    def survivors(self) -> list[str]:
        alive = []
        for pid in self.seen:
            try:
                proc = psutil.Process(pid)
                if proc.status() != psutil.STATUS_ZOMBIE:
                    alive.append(f"{pid}: {' '.join(proc.cmdline())}")
            except psutil.NoSuchProcess:
                continue
        return alive

    def kill_all(self) -> None:
        for pid in [self.proc.pid, *self.seen]:
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
