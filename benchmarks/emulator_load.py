"""Load figures of the gateway emulator: signed unsign requests per second at zero latency, and
1,000 concurrent slow requests held at 100 ms latency.

The emulator runs as its own process (``python -m unsign_worker emulator``) on 127.0.0.1; this
script is the load client (asyncio + aiohttp, keep-alive connections, every request signed
with MD5 beforehand so the client spends its time on HTTP). Bounded in count and time.

    .venv/bin/python benchmarks/emulator_load.py [--requests 30000] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
import psutil

from unsign_worker.cli.emulator_cmds import write_agreements
from unsign_worker.emulator.admin import EmulatorAdmin
from unsign_worker.emulator.runner import install_uvloop
from unsign_worker.emulator.seed import generate
from unsign_worker.params import UnsignRequest, build_params
from unsign_worker.signing import make_signer, sign_params

PARTNER = "2088101568338364"
#: Give up on a phase after this long, seconds.
PHASE_TIMEOUT_SECONDS = 120.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def signed_bodies(rows: list[dict[str, str]], key: str) -> list[bytes]:
    signer = make_signer("MD5", key=key)
    bodies = []
    for row in rows:
        request = UnsignRequest.from_mapping({k: v for k, v in row.items()
                                              if k != "reference" and v})
        params = sign_params(build_params(request, partner=PARTNER, charset="utf-8"), signer,
                             "utf-8")
        bodies.append(urlencode(params).encode("ascii"))
    return bodies


Result = tuple[float, list[float], int]


async def _send_all(session: aiohttp.ClientSession, url: str, bodies: list[bytes],
                    concurrency: int) -> Result:
    """Send every body with ``concurrency`` workers; returns (seconds, latencies, failures)."""
    latencies: list[float] = []
    failures = 0
    queue = iter(bodies)
    headers = {"Content-Type": "application/x-www-form-urlencoded"}

    async def worker() -> None:
        nonlocal failures
        for body in queue:
            started = time.perf_counter()
            try:
                async with session.post(url, data=body, headers=headers) as resp:
                    answer = await resp.read()
            except aiohttp.ClientError:
                failures += 1
                continue
            latencies.append(time.perf_counter() - started)
            if b"<is_success>T</is_success>" not in answer:
                failures += 1

    started = time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(concurrency))),
                           PHASE_TIMEOUT_SECONDS)
    return time.perf_counter() - started, latencies, failures


async def fire(url: str, batches: list[list[bytes]], concurrency: int) -> list[Result]:
    """Send each batch in turn over one pool of ``concurrency`` keep-alive connections."""
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency)
    timeout = aiohttp.ClientTimeout(total=PHASE_TIMEOUT_SECONDS)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        return [await _send_all(session, url, batch, concurrency) for batch in batches]


def server_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by the emulator process."""
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


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
            bodies = signed_bodies(data.rows, key)
            url = f"http://127.0.0.1:{port}/gateway.do?_input_charset=utf-8"

            fast = bodies[: args.requests]
            done = len(fast) - 1000
            asyncio.run(fire(url, [fast[:1000]], args.concurrency))  # warm-up
            cpu_before = server_cpu(server.pid)
            [(seconds, lat, failed)] = asyncio.run(fire(url, [fast[1000:]], args.concurrency))
            cpu = server_cpu(server.pid) - cpu_before
            print(f"throughput: {done} signed MD5 unsign requests over {args.concurrency} "
                  f"connections: {done / seconds:,.0f} requests/s "
                  f"(p50 {pct(lat, 0.5) * 1000:.1f} ms, p99 {pct(lat, 0.99) * 1000:.1f} ms, "
                  f"failures {failed})")
            print(f"emulator CPU: {cpu / done * 1e6:.0f} us per request, i.e. "
                  f"{done / cpu:,.0f} requests per CPU-second of the emulator process "
                  f"(the load client used the rest of the 2 cores)")

            admin.set_faults(latency_ms=args.latency_ms)
            admin.reset_stats()
            slow = bodies[args.requests:]
            waves = [slow[w * args.slow:(w + 1) * args.slow] for w in range(3)]
            for number, (seconds, lat, failed) in enumerate(
                    asyncio.run(fire(url, waves, args.slow)), start=1):
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
