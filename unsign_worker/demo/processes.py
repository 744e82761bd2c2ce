"""The one-command demo's machinery: the processes it starts, and how it stops them.

Every child (emulator, workers, Flower, the campaign run) is started in its own session, so it
is its own process group: a terminal's Ctrl-C reaches only the demo, which then stops exactly
the groups it started (SIGINT to the campaign run, SIGTERM to the rest, SIGKILL after a grace
period) and nothing else. Their group ids are also written to a file, so the next run can end a
group left behind by a demo that was killed outright (checked against ``/proc`` first, so a
reused process id is never touched).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

#: Seconds a child gets to stop after SIGTERM before it is killed.
STOP_GRACE_SECONDS = 20.0
#: Seconds the campaign run gets to stop after SIGINT before it gets SIGTERM.
INTERRUPT_GRACE_SECONDS = 5.0
#: Marker of this project's processes in /proc/<pid>/cmdline.
OWN_MARKER = b"unsign-worker"


class DemoError(Exception):
    """A step of the demo failed; the message says which and where its log is."""


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path | None
    #: signal that asks this child to stop gracefully
    stop_signal: int = signal.SIGTERM
    #: where this child's output starts in ``log`` (logs are appended to across runs)
    log_start: int = 0


@dataclass
class Supervisor:
    """Starts children in their own process groups and stops them, and only them."""

    pidfile: Path
    children: list[Child] = field(default_factory=list)

    def start(self, name: str, argv: Sequence[str], env: Mapping[str, str], *,
              log: Path | None = None, stop_signal: int = signal.SIGTERM) -> Child:
        """Start ``argv``; its output goes to ``log`` (None: this process's terminal)."""
        out: IO[bytes] | None = open(log, "ab") if log else None
        start = out.seek(0, os.SEEK_END) if out is not None else 0
        try:
            proc = subprocess.Popen(list(argv), env=dict(env), stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=subprocess.STDOUT if out else None,
                                    start_new_session=True)
        finally:
            if out is not None:
                out.close()
        child = Child(name, proc, log, stop_signal, start)
        self.children.append(child)
        self._save()
        return child

    def _save(self) -> None:
        live = [c.proc.pid for c in self.children if c.proc.poll() is None]
        self.pidfile.write_text(json.dumps({"groups": live}), encoding="utf-8")

    def check(self, ignore: Sequence[Child] = ()) -> None:
        """Raise DemoError if a child ended on its own (a crashed worker, say): it names the
        child, its exit code, its log and the last lines it wrote there."""
        for child in self.children:
            if child not in ignore and child.proc.poll() is not None:
                where = f"; see {child.log}, which ends:\n{_tail(_output(child))}" if child.log \
                    else ""
                raise DemoError(f"{child.name} stopped unexpectedly "
                                f"(exit {child.proc.returncode}){where}")

    def stop(self, *, grace: float = STOP_GRACE_SECONDS, keep: Sequence[Child] = ()
             ) -> list[str]:
        """Stop every child still running but those in ``keep`` (stopped by a later call: the
        Redis the others use, say), newest first; returns the names stopped."""
        running = [c for c in reversed(self.children) if c.proc.poll() is None and c not in keep]
        for child in running:
            _signal_group(child.proc.pid, child.stop_signal)
        deadline = time.monotonic() + grace
        for child in running:
            if child.stop_signal == signal.SIGINT:
                _wait(child.proc, INTERRUPT_GRACE_SECONDS)
                _signal_group(child.proc.pid, signal.SIGTERM)
            _wait(child.proc, max(0.1, deadline - time.monotonic()))
        for child in running:
            # the group too: a worker's pool children must not outlive it
            _signal_group(child.proc.pid, signal.SIGKILL)
            _wait(child.proc, 10)
        self._save()
        return [c.name for c in running]


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _wait(proc: subprocess.Popen[bytes], timeout: float) -> None:
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pass


def reap_leftovers(pidfile: Path) -> int:
    """End the process groups a previous demo left behind; returns how many were ended.

    A group is ended only if its leader is still one of this project's processes.
    """
    try:
        groups = json.loads(pidfile.read_text(encoding="utf-8")).get("groups", [])
    except (OSError, ValueError):
        return 0
    ended = 0
    for pgid in groups:
        try:
            cmdline = Path(f"/proc/{int(pgid)}/cmdline").read_bytes()
        except (OSError, ValueError):
            continue
        if OWN_MARKER in cmdline and os.getpgid(int(pgid)) == int(pgid):
            _signal_group(int(pgid), signal.SIGTERM)
            ended += 1
    if ended:
        time.sleep(2)  # let them go before anything binds their ports again
        for pgid in groups:
            _signal_group(int(pgid), signal.SIGKILL)
    pidfile.unlink(missing_ok=True)
    return ended


def _output(child: Child) -> str:
    """What ``child`` wrote to its log (not what earlier runs left there)."""
    assert child.log is not None
    try:
        with open(child.log, "rb") as log:
            log.seek(child.log_start)
            return log.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""


def wait_for_line(child: Child, pattern: str, *, timeout: float) -> re.Match[str]:
    """Wait until ``child`` has written a line matching ``pattern`` to its log; return the
    match."""
    assert child.log is not None
    regex = re.compile(pattern)
    deadline = time.monotonic() + timeout
    while True:
        text = _output(child)
        found = regex.search(text)
        if found:
            return found
        if child.proc.poll() is not None:
            raise DemoError(f"{child.name} exited (code {child.proc.returncode}) before it was "
                            f"ready; see {child.log}:\n{_tail(text)}")
        if time.monotonic() > deadline:
            raise DemoError(f"{child.name} not ready after {timeout:.0f}s; see {child.log}")
        time.sleep(0.1)


def wait_until(condition: Callable[[], Any], *, timeout: float, what: str,
               check: Callable[[], None] = lambda: None) -> Any:
    """Poll ``condition`` every 0.2 s until it is truthy; ``check`` may raise meanwhile."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        check()
        if time.monotonic() > deadline:
            raise DemoError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.2)


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.splitlines()[-lines:])


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def delete_prefix(client: Any, prefix: str) -> int:
    """Delete every key under ``prefix`` (the demo's own); returns how many."""
    deleted, batch = 0, []
    for key in client.scan_iter(match=f"{prefix}*", count=1000):
        batch.append(key)
        if len(batch) >= 500:
            deleted += client.unlink(*batch)
            batch.clear()
    if batch:
        deleted += client.unlink(*batch)
    return int(deleted)
