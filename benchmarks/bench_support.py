"""Shared pieces of the campaign benchmark (benchmarks/campaign.py).

- :class:`Processes`: every child process in its own session (process group), its output in a
  log file, and all of them stopped (SIGTERM, then SIGKILL) however the benchmark ends.
- :func:`start_emulator`: ``unsign-worker emulator`` as a separate process on 127.0.0.1, over
  plain HTTP or HTTPS.
- :class:`Monitor`: samples, every 0.5 s, the resident memory of each watched process (children
  included) and the progress of the run; CPU seconds of each process and of the whole machine
  are taken at start and stop.
- :func:`delete_prefix`: removes every Redis key under a benchmark's own prefix.
"""

from __future__ import annotations

import json
import os
import platform
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import redis

from unsign_worker.emulator.admin import EmulatorAdmin
from unsign_worker.emulator.tls import SandboxPki

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
MB = 1024 * 1024
#: Seconds between two samples of the monitor.
SAMPLE_INTERVAL_SECONDS = 0.5
#: Seconds a child is given to stop on SIGTERM before it is killed.
STOP_GRACE_SECONDS = 15.0


def free_port() -> int:
    """A free loopback port: the one helper of the benchmarks (the tests' is
    tests/plugins/ports.py)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pct(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile ``q`` (0..1) of ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Processes:
    """Child processes, each in its own session so that a whole process group is stopped."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, argv: list[str], *, env: dict[str, str], cwd: Path
              ) -> subprocess.Popen[bytes]:
        with open(self.log_dir / f"{name}.log", "ab") as log:
            proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        self.procs[name] = proc
        return proc

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.log_dir / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, name: str, *, sig: int = signal.SIGTERM) -> None:
        """Stop one child's process group: ``sig``, then SIGKILL after the grace period."""
        proc = self.procs.pop(name, None)
        if proc is None:
            return
        for current in (sig, signal.SIGKILL):
            try:
                os.killpg(proc.pid, current)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=STOP_GRACE_SECONDS)
                break
            except subprocess.TimeoutExpired:
                continue
        try:  # children left behind in the group (a prefork pool) go too
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=STOP_GRACE_SECONDS)

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.stop(name)


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a child: no ALIPAY_/UNSIGN_ variables of the caller, the repository
    on the import path (``celery -A benchmarks.baseline_app``), unbuffered output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALIPAY_", "UNSIGN_"))}
    env["PYTHONPATH"] = str(REPO)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def start_emulator(procs: Processes, *, agreements: Path, scenario: Path, partner: str,
                   key: str, cwd: Path, tls: SandboxPki | None = None,
                   name: str = "emulator") -> tuple[str, EmulatorAdmin, int]:
    """Start the emulator on a free loopback port; returns (gateway URL, admin, pid). With
    ``tls`` (a sandbox PKI) it serves HTTPS, reached as ``https://localhost:PORT`` (a name
    the certificate is for), its admin client trusting the PKI's CA alone."""
    port = free_port()
    argv = [sys.executable, "-m", "unsign_worker", "emulator", "--port", str(port),
            "--agreements", str(agreements), "--scenario", str(scenario)]
    if tls is not None:
        argv += ["--tls-cert", str(tls.cert_file), "--tls-key", str(tls.key_file)]
    proc = procs.start(name, argv, env=child_env(ALIPAY_KEY=key, ALIPAY_PARTNER=partner),
                       cwd=cwd)
    origin = f"https://localhost:{port}" if tls is not None else f"http://127.0.0.1:{port}"
    admin = EmulatorAdmin(origin, ca_bundle=str(tls.ca_file) if tls is not None else None)
    deadline = time.monotonic() + 120
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"the emulator exited:\n{procs.log_tail(name)}")
        try:
            admin.wait_ready(1)
            break
        except Exception:
            if time.monotonic() > deadline:
                raise RuntimeError("the emulator did not answer within 120 s") from None
    return f"{origin}/gateway.do", admin, proc.pid


def tree(pid: int) -> list[psutil.Process]:
    proc = psutil.Process(pid)
    return [proc, *proc.children(recursive=True)]


def tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and all its children (0 once it is gone)."""
    try:
        return sum(p.memory_info().rss for p in tree(pid))
    except psutil.Error:
        return 0


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by ``pid`` and its live children."""
    try:
        return sum(t.user + t.system for t in (p.cpu_times() for p in tree(pid)))
    except psutil.Error:
        return 0.0


def machine_busy() -> float:
    """CPU seconds all cores have spent running anything (user, nice, system, interrupts);
    idle, I/O wait and time stolen by the hypervisor left out, guest time already in user."""
    t = psutil.cpu_times()
    return float(t.user + t.nice + t.system + getattr(t, "irq", 0.0)
                 + getattr(t, "softirq", 0.0))


@dataclass
class Sample:
    at: float
    done: int
    rss: dict[str, int]


@dataclass
class Monitor:
    """Samples memory and progress in a background thread; CPU at start and stop.

    ``pids`` names the watched processes; ``progress()`` returns the jobs finished so far.
    """

    pids: dict[str, int]
    progress: Callable[[], int]
    samples: list[Sample] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)
    busy_seconds: float = 0.0
    started_at: float = 0.0
    stopped_at: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _cpu0: dict[str, float] = field(default_factory=dict)
    _busy0: float = 0.0

    def start(self) -> Monitor:
        self._cpu0 = {name: tree_cpu(pid) for name, pid in self.pids.items()}
        self._busy0 = machine_busy()
        self.started_at = time.time()
        self._thread = threading.Thread(target=self._run, name="bench-monitor", daemon=True)
        self._thread.start()
        return self

    def sample(self) -> Sample:
        try:
            done = self.progress()
        except redis.RedisError:
            done = self.samples[-1].done if self.samples else 0
        sample = Sample(time.time(), done,
                        {name: tree_rss(pid) for name, pid in self.pids.items()})
        self.samples.append(sample)
        return sample

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_INTERVAL_SECONDS):
            self.sample()

    def stop(self) -> None:
        """Stop sampling (one last sample); record CPU used since start. Call before the
        watched processes end."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.sample()
        self.cpu = {name: max(0.0, tree_cpu(pid) - self._cpu0[name])
                    for name, pid in self.pids.items()}
        self.busy_seconds = machine_busy() - self._busy0
        self.stopped_at = time.time()

    @property
    def busy_cores(self) -> float:
        """Cores busy on average between start and stop (whole machine)."""
        return self.busy_seconds / max(self.stopped_at - self.started_at, 1e-9)

    def peak_mb(self, name: str) -> float:
        return round(max((s.rss.get(name, 0) for s in self.samples), default=0) / MB, 1)

    def series(self, name: str, *, points: int = 100) -> list[list[float]]:
        """At most ``points`` samples of ``[seconds since start, jobs done, RSS MB]``."""
        step = max(1, len(self.samples) // points)
        return [[round(s.at - self.started_at, 1), s.done, round(s.rss.get(name, 0) / MB, 1)]
                for s in self.samples[::step]]

    def rss_at(self, name: str, fraction: float, total: int) -> float | None:
        """RSS (MB) at the first sample where ``fraction`` of ``total`` jobs were done."""
        for sample in self.samples:
            if sample.done >= fraction * total and sample.rss.get(name):
                return round(sample.rss[name] / MB, 1)
        return None


def delete_prefix(client: redis.Redis, prefix: str) -> int:
    """Delete every key starting with ``prefix`` (no glob characters in it); returns the count."""
    if not prefix or any(c in prefix for c in "*?[]\\"):
        raise ValueError(f"refusing to delete keys under {prefix!r}")
    deleted, batch = 0, []
    for key in client.scan_iter(match=prefix + "*", count=1000):
        batch.append(key)
        if len(batch) >= 1000:
            deleted += client.unlink(*batch)
            batch = []
    if batch:
        deleted += client.unlink(*batch)
    return deleted


def redis_cpu(client: redis.Redis) -> float:
    """CPU seconds of the Redis server so far (shared with any other user of it)."""
    info = client.info("cpu")
    return float(info.get("used_cpu_user", 0.0)) + float(info.get("used_cpu_sys", 0.0))


def machine() -> dict[str, object]:
    """The machine the figures were measured on, and the code (``git describe``; ``-dirty``
    when the working tree had changes)."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=REPO,
                                capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        commit = ""
    return {"nproc": os.cpu_count(), "cpu_model": model, "commit": commit,
            "memory_gb": round(psutil.virtual_memory().total / 1024 ** 3, 1),
            "python": platform.python_version(), "platform": platform.platform()}


def raise_interrupt(signum: int, frame: Any) -> None:
    """Signal handler: SIGTERM/SIGHUP stop a benchmark the way Ctrl-C does (clean-up runs)."""
    raise KeyboardInterrupt(f"signal {signum}")


def save_report(out: Path, report: dict[str, Any]) -> None:
    """Write the benchmark's figures as JSON (after each run, so an interruption keeps them)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def exit_status(report: dict[str, Any]) -> int:
    """1 if the benchmark was interrupted, failed, or any run did not finish every job; else 0."""
    failed = (report.get("interrupted") or report.get("error")
              or any(not run["ok"] for run in report["runs"]))
    return 1 if failed else 0
