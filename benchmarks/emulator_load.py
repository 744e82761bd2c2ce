"""Load figures of the gateway emulator: signed unsign requests per second at zero latency, and
1,000 concurrent slow requests held at 100 ms latency.

The emulator runs as its own process (``python -m unsign_worker emulator``) on 127.0.0.1; this
script is the load client (plain asyncio keep-alive HTTP/1.1 connections, every request signed
with MD5 and serialised beforehand, so the client takes as little of the two cores as it can).
Every answer must be a success (``<is_success>T``): each request unsigns another agreement.
Bounded in count and time.

    .venv/bin/python benchmarks/emulator_load.py [--requests 30000] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import cast
from urllib.parse import urlencode

import psutil
from bench_support import free_port

from unsign_worker.cli.emulator_cmds import write_agreements
from unsign_worker.emulator.admin import EmulatorAdmin
from unsign_worker.emulator.runner import install_uvloop
from unsign_worker.emulator.seed import generate
from unsign_worker.protocol.params import UnsignRequest, build_params
from unsign_worker.protocol.signing import make_signer, sign_params

PARTNER = "2088101568338364"
#: Give up on a phase after this long, seconds.
PHASE_TIMEOUT_SECONDS = 120.0


def signed_requests(rows: list[dict[str, str]], key: str, port: int) -> list[bytes]:
    """Every row as a complete HTTP/1.1 form POST, signed beforehand."""
    signer = make_signer("MD5", key=key)
    head = (f"POST /gateway.do?_input_charset=utf-8 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n")
    requests = []
    for row in rows:
        request = UnsignRequest.from_mapping({k: v for k, v in row.items()
                                              if k != "reference" and v})
        params = sign_params(build_params(request, partner=PARTNER, charset="utf-8"), signer,
                             "utf-8")
        body = urlencode(params).encode("ascii")
        requests.append(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
    return requests


class Connection(asyncio.Protocol):
    """A minimal keep-alive HTTP/1.1 client connection: one request at a time, answers read by
    Content-Length. Far lighter than a general client, so the two cores go to the emulator."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._waiter: asyncio.Future[tuple[int, bytes]] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0 or self._waiter is None:
            return
        head = bytes(self._buffer[:end]).lower()
        at = head.find(b"content-length:")
        length = int(head[at + 15:].split(b"\r\n", 1)[0]) if at >= 0 else 0
        if len(self._buffer) < end + 4 + length:
            return
        answer = (int(head[9:12]), bytes(self._buffer[end + 4:end + 4 + length]))
        del self._buffer[:end + 4 + length]
        waiter, self._waiter = self._waiter, None
        waiter.set_result(answer)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(ConnectionError("connection lost"))

    async def send(self, request: bytes) -> tuple[int, bytes]:
        assert self.transport is not None
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return await self._waiter


Result = tuple[float, list[float], int]


async def _send_all(connections: list[Connection], requests: list[bytes]) -> Result:
    """Send every request, one worker per connection; returns (seconds, latencies, failures)."""
    latencies: list[float] = []
    failures = 0
    queue = iter(requests)

    async def worker(connection: Connection) -> None:
        nonlocal failures
        for request in queue:
            started = time.perf_counter()
            try:
                status, answer = await connection.send(request)
            except ConnectionError:
                failures += 1
                return
            latencies.append(time.perf_counter() - started)
            if status != 200 or b"<is_success>T</is_success>" not in answer:
                failures += 1

    started = time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*(worker(c) for c in connections)),
                           PHASE_TIMEOUT_SECONDS)
    return time.perf_counter() - started, latencies, failures


async def fire(port: int, batches: list[list[bytes]], concurrency: int) -> list[Result]:
    """Send each batch in turn over the same ``concurrency`` keep-alive connections."""
    loop = asyncio.get_running_loop()
    connections = []
    for _ in range(concurrency):
        _, protocol = await loop.create_connection(Connection, "127.0.0.1", port)
        connections.append(protocol)
    try:
        return [await _send_all(connections, batch) for batch in batches]
    finally:
        for connection in connections:
            if connection.transport is not None:
                connection.transport.close()


def server_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by the emulator process."""
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def own_cpu() -> float:
    times = os.times()
    return times.user + times.system


def machine_busy() -> float:
    """CPU seconds all processes on the machine have been busy (not idle), all cores."""
    times = psutil.cpu_times()
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=30_000,
                        help="requests of the throughput phase")
    parser.add_argument("--concurrency", type=int, default=64,
                        help="concurrent connections of the throughput phase")
    parser.add_argument("--slow", type=int, default=1000,
                        help="concurrent requests of the slow phase")
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--no-uvloop", action="store_true",
                        help="serve and load without uvloop")
    args = parser.parse_args(argv)

    if not args.no_uvloop:
        install_uvloop()  # the client too: it shares the two cores with the server
    key = secrets.token_hex(16)
    total = args.requests + 3 * args.slow
    data = generate(total, {"success": 1.0}, partner=PARTNER, seed=1)
    with tempfile.TemporaryDirectory() as tmp:
        agreements = Path(tmp) / "agreements.json"
        write_agreements(str(agreements), data)
        port = free_port()
        env = dict(os.environ, ALIPAY_KEY=key)
        command = [sys.executable, "-m", "unsign_worker", "emulator", "--port", str(port),
                   "--agreements", str(agreements)]
        if args.no_uvloop:
            command.append("--no-uvloop")
        server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
        try:
            admin = EmulatorAdmin(f"http://127.0.0.1:{port}")
            admin.wait_ready(30)
            bodies = signed_requests(data.rows, key, port)

            fast = bodies[: args.requests]
            done = len(fast) - 1000
            asyncio.run(fire(port, [fast[:1000]], args.concurrency))  # warm-up
            cpu_before, client_before, busy_before = (server_cpu(server.pid), own_cpu(),
                                                      machine_busy())
            [(seconds, lat, failed)] = asyncio.run(fire(port, [fast[1000:]], args.concurrency))
            cpu = server_cpu(server.pid) - cpu_before
            client_cpu = own_cpu() - client_before
            others = max(0.0, machine_busy() - busy_before - cpu - client_cpu)
            print(f"throughput: {done} signed MD5 unsign requests over {args.concurrency} "
                  f"connections: {done / seconds:,.0f} requests/s "
                  f"(p50 {pct(lat, 0.5) * 1000:.1f} ms, p99 {pct(lat, 0.99) * 1000:.1f} ms, "
                  f"failures {failed})")
            print(f"CPU per request: emulator {cpu / done * 1e6:.0f} us (i.e. {done / cpu:,.0f} "
                  f"requests per CPU-second), load client {client_cpu / done * 1e6:.0f} us; "
                  f"other processes took {others / seconds:.2f} of the "
                  f"{os.cpu_count()} cores meanwhile")

            admin.set_faults(latency_ms=args.latency_ms)
            admin.reset_stats()
            slow = bodies[args.requests:]
            waves = [slow[w * args.slow:(w + 1) * args.slow] for w in range(3)]
            for number, (seconds, lat, failed) in enumerate(
                    asyncio.run(fire(port, waves, args.slow)), start=1):
                note = " (opens the connections)" if number == 1 else ""
                print(f"slow wave {number}{note}: {args.slow} concurrent requests at "
                      f"{args.latency_ms:g} ms latency, all answered in {seconds:.3f} s "
                      f"(p50 {pct(lat, 0.5) * 1000:.0f} ms, p99 {pct(lat, 0.99) * 1000:.0f} ms, "
                      f"mean {statistics.fmean(lat) * 1000:.0f} ms, failures {failed})")
            print(f"emulator held at most {admin.stats()['max_in_flight']} requests at once")
            stats = admin.stats(per_agreement=False)
            print(f"emulator stats: requests {stats['requests']}, unsigns {stats['unsigns']}, "
                  f"duplicates {stats['duplicates']}, bad signatures {stats['bad_signatures']}")
        finally:
            server.terminate()
            server.wait(timeout=15)
    return 0


if __name__ == "__main__":
    sys.exit(main())
