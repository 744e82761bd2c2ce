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
