"""The processes of a round: each started on its host (``ip netns exec``) in a session of its
own, its output in ``<round>/logs/<host>-<name>.log``, restartable with the same command, and
all stopped at the end (SIGTERM, then SIGKILL of whatever is left in the namespaces).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from rehearsal.topology import Topology

#: the project's folder, on the PYTHONPATH of every process (the test hook, the application)
PROJECT = Path(__file__).resolve().parent.parent
STOP_SECONDS = 10.0


def base_env() -> dict[str, str]:
    """A clean environment: nothing of the caller's ALIPAY_/UNSIGN_ settings."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ALIPAY_", "UNSIGN_", "FLOWER_", "EMULATOR_"))}
    env.update({"PYTHONPATH": str(PROJECT), "PYTHONUNBUFFERED": "1",
                "PATH": f"{Path(sys.executable).parent}:{env.get('PATH', '/usr/bin:/bin')}"})
    return env


@dataclass
class Proc:
    host: str
    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    popen: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def tail(self, lines: int = 30) -> str:
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class Processes:
    topology: Topology
    logs: Path
    procs: dict[str, Proc] = field(default_factory=dict)

    def start(self, host: str, name: str, argv: list[str],
              env: Mapping[str, str] | None = None) -> Proc:
        """Start ``argv`` on ``host`` (``name`` unique per host)."""
        self.logs.mkdir(parents=True, exist_ok=True)
        proc = Proc(host=host, name=name, argv=list(argv), env={**base_env(), **(env or {})},
                    log=self.logs / f"{host}-{name}.log")
        self.procs[f"{host}/{name}"] = proc
        return self.restart(proc)

    def restart(self, proc: Proc) -> Proc:
        self.reap(proc)
        with open(proc.log, "ab") as out:
            out.write(f"--- start {proc.starts + 1}: {' '.join(proc.argv)}\n".encode())
            out.flush()
            proc.popen = subprocess.Popen(
                [*self.topology.exec_prefix(proc.host), *proc.argv], env=proc.env,
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, cwd=self.logs)
        proc.starts += 1
        return proc

    def on(self, host: str) -> list[Proc]:
        return [p for p in self.procs.values() if p.host == host]

    def get(self, host: str, name: str) -> Proc:
        return self.procs[f"{host}/{name}"]

    @staticmethod
    def reap(proc: Proc) -> None:
        if proc.popen is not None and proc.popen.poll() is None:
            try:
                proc.popen.wait(timeout=0.1)
            except subprocess.TimeoutExpired:
                pass

    def stop(self, proc: Proc, sig: int = signal.SIGTERM) -> None:
        """Signal the process's session; wait for it (SIGKILL after STOP_SECONDS)."""
        if proc.popen is None or proc.popen.poll() is not None:
            return
        try:
            os.killpg(proc.popen.pid, sig)
            proc.popen.wait(timeout=STOP_SECONDS)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.popen.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.popen.wait(timeout=STOP_SECONDS)

    def stop_all(self) -> None:
        """SIGTERM everything (the workers' warm shutdown), then kill what is left."""
        running = [p for p in self.procs.values() if p.alive()]
        for proc in running:
            try:
                os.killpg(proc.popen.pid, signal.SIGTERM)  # type: ignore[union-attr]
            except ProcessLookupError:
                pass
        for proc in running:
            try:
                proc.popen.wait(timeout=STOP_SECONDS)  # type: ignore[union-attr]
            except subprocess.TimeoutExpired:
                self.stop(proc, signal.SIGKILL)
        for host in self.topology.hosts:
            self.topology.kill_host(host)
        for proc in self.procs.values():
            if proc.popen is not None:
                try:
                    proc.popen.wait(timeout=STOP_SECONDS)
                except subprocess.TimeoutExpired:
                    pass
