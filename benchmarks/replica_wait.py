"""What ``UNSIGN_REPLICA_ACKS=1`` costs: one WAIT per flush of claims and outcomes.

Starts a private master and replica (``redis-server`` on free loopback ports, in a temp dir,
append-only ``everysec``), then times ``--flushes`` pipelined flushes of ten settle-sized writes
(what one flush of a batch carries), without and with ``WAIT 1 1000`` after each. Prints one
line: µs per flush and per job (ten jobs per flush, two flushes per job's life: claim, settle).

    .venv/bin/python benchmarks/replica_wait.py [--flushes 2000]
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

import redis
from bench_support import free_port


def _start(root: Path, name: str, *extra: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    (root / name).mkdir()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                             "--dir", str(root / name), "--appendonly", "yes", "--save", "",
                             *extra], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    deadline = time.monotonic() + 30
    while True:
        try:
            client.ping()
            return proc, port
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _flushes(client: redis.Redis, count: int, *, wait: bool) -> float:
    payload = "x" * 600  # about a settle's JSON
    started = time.perf_counter()
    for i in range(count):
        pipe = client.pipeline(transaction=False)
        for j in range(10):
            pipe.hset(f"bench:job:{i}:{j}", mapping={"state": "unsigned", "data": payload})
        pipe.execute()
        if wait:
            client.wait(1, 1000)
    return (time.perf_counter() - started) / count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flushes", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="unsign-wait-") as tmp:
        root = Path(tmp)
        master, port = _start(root, "master")
        replica, rport = _start(root, "replica", "--replicaof", "127.0.0.1", str(port))
        try:
            client = redis.Redis(port=port)
            while redis.Redis(port=rport).info("replication").get("master_link_status") != "up":
                time.sleep(0.05)
            plain = _flushes(client, args.flushes, wait=False)
            waited = _flushes(client, args.flushes, wait=True)
        finally:
            for proc in (replica, master):
                proc.terminate()
                proc.wait(timeout=15)
    extra = waited - plain
    print(f"replica WAIT: flush of 10 writes {plain * 1e6:.0f} µs without, "
          f"{waited * 1e6:.0f} µs with WAIT 1 (+{extra * 1e6:.0f} µs per flush, "
          f"+{2 * extra / 10 * 1e6:.0f} µs per job at ten jobs per flush)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
