"""A private ``redis-server`` on a free loopback port, in a temp dir: started, stopped, killed
and restarted under a running command, for the outage and failover tests."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import redis

from tests.plugins.ports import free_port

needs_redis_server = pytest.mark.skipif(shutil.which("redis-server") is None,
                                        reason="needs redis-server on PATH")


def pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError):
        return False


def wait_until(condition, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.05)


class PrivateRedis:
    """One redis-server with append-only persistence (``appendfsync`` as given) or none."""

    def __init__(self, data_dir: Path, *, appendfsync: str = "always", port: int = 0,
                 extra: list[str] | None = None, appendonly: bool = True) -> None:
        self.dir = data_dir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.appendfsync = appendfsync
        self.extra = list(extra or [])
        self.appendonly = appendonly
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_connect_timeout=2, socket_timeout=5)

    def start(self) -> PrivateRedis:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--dir", str(self.dir), "--appendonly", "yes" if self.appendonly else "no",
             "--appendfsync", self.appendfsync,
             "--save", "", "--maxmemory-policy", "noeviction", *self.extra],
            stdout=open(self.dir / "redis.log", "ab"), stderr=subprocess.STDOUT)
        wait_until(lambda: pings(self.client()), 30, f"redis-server on {self.port}")
        return self

    def stop(self) -> None:
        """A clean shutdown: the append-only file is complete."""
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            self.client().shutdown(nosave=False)
        except redis.ConnectionError:
            pass
        self.proc.wait(timeout=30)

    def kill(self) -> None:
        """SIGKILL: what ``appendfsync`` did not write is lost."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)


def start_sentinels(root: Path, master: str, master_port: int, *, replicas: int,
                    conf: str = "") -> list[tuple[int, subprocess.Popen[bytes]]]:
    """Three sentinels (quorum 2) on free loopback ports monitoring ``master`` at
    ``master_port``, with ``conf`` lines added; returned once they know each other and the
    ``replicas``."""
    sentinels: list[tuple[int, subprocess.Popen[bytes]]] = []
    for n in range(3):
        port = free_port()
        path = root / f"sentinel{n}.conf"
        path.write_text(
            f"port {port}\nbind 127.0.0.1\ndir {root}\n"
            f"sentinel monitor {master} 127.0.0.1 {master_port} 2\n{conf}"
            f"sentinel down-after-milliseconds {master} 1000\n"
            f"sentinel failover-timeout {master} 5000\n"
            f"sentinel parallel-syncs {master} 1\n")
        proc = subprocess.Popen(["redis-server", str(path), "--sentinel"],
                                stdout=open(root / f"sentinel{n}.log", "ab"),
                                stderr=subprocess.STDOUT)
        sentinels.append((port, proc))
    for port, _ in sentinels:
        client = redis.Redis(port=port)
        wait_until(lambda c=client: pings(c) and int(c.sentinel_master(master).get(
            "num-other-sentinels", 0)) >= 2 and int(c.sentinel_master(master).get(
            "num-slaves", 0)) >= replicas, 60, "the sentinels to know each other and the replicas")
    return sentinels
