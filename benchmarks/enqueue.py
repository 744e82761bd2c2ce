"""How long enqueueing a 100,000-row campaign file takes (no worker needed).

Writes a campaign CSV with :func:`unsign_worker.emulator.seed.generate`, then times:

1. read + validate every row, keeping the verdicts on disk (``scan_file(..., keep=True)``),
   in this process;
2. record + send every job (``start_file``: campaign meta, job list, records a chunk per
   script call, batched messages), in this process;
3. the whole ``unsign-worker campaign run FILE --detach`` command, as a user runs it
   (a second campaign id, so it enqueues everything again), wall and CPU seconds (user + system,
   of the command's process);
4. the same command once more: a re-run that skips every job.

With ``--source DIR`` (repeatable), each of ``--rounds`` rounds also runs the command from DIR,
another checkout of the project (``git worktree add --detach ../before <commit>``), with DIR
first on the import path, interleaved with this checkout's, each under its own campaign id:
before and after, side by side in one invocation.

Uses ``UNSIGN_REDIS_URL`` (default: redis://127.0.0.1:6379/13) under a fresh key prefix that is
deleted afterwards. Prints one line per figure.

    .venv/bin/python benchmarks/enqueue.py [--rows 100000] [--rounds 1] [--source DIR ...]
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import redis

from unsign_worker.emulator.seed import CAMPAIGN_COLUMNS, PRESETS, generate
from unsign_worker.producers.campaign.enqueue import BATCH_SIZE, CHUNK_SIZE, CampaignEnqueuer
from unsign_worker.producers.campaign.plan import scan_file
from unsign_worker.producers.campaign.stream import start_file
from unsign_worker.producers.producer import Producer, producer_app
from unsign_worker.store.campaigns import CampaignStore
from unsign_worker.store.keys import Keys

DEFAULT_URL = "redis://127.0.0.1:6379/13"


def delete_prefix(client: redis.Redis, prefix: str) -> None:
    batch = []
    for key in client.scan_iter(match=f"{prefix}*", count=5000):
        batch.append(key)
        if len(batch) >= 5000:
            client.delete(*batch)
            batch.clear()
    if batch:
        client.delete(*batch)


def run_command(source: Path, path: Path, env: dict[str, str]) -> tuple[float, float]:
    """``campaign run PATH --detach`` from the checkout ``source``: (wall, CPU seconds)."""
    code = "import sys; from unsign_worker.cli.main import main; sys.exit(main())"
    began = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "campaign", "run", str(path), "--detach", "--id",
         f"bench-{uuid.uuid4().hex[:6]}"], env={**env, "PYTHONPATH": str(source)},
        cwd=source, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status):
        raise RuntimeError(f"{source}: exit {os.waitstatus_to_exitcode(status)}: "
                           f"{proc.stderr.read().decode()[-2000:] if proc.stderr else ''}")
    return time.perf_counter() - began, usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--source", action="append", default=[], type=Path, metavar="DIR",
                        help="also run the command from this checkout, in every round")
    args = parser.parse_args()
    url = os.environ.get("UNSIGN_REDIS_URL") or DEFAULT_URL
    prefix = f"unsign-bench:{uuid.uuid4().hex[:8]}:"
    client = redis.Redis.from_url(url)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "campaign.csv"
        data = generate(args.rows, PRESETS["clean"], seed=1)
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, CAMPAIGN_COLUMNS)
            writer.writeheader()
            writer.writerows(data.rows)
        app = producer_app(url, prefix)
        producer = Producer(app, client, Keys(prefix))
        try:
            began = time.perf_counter()
            scan = scan_file(path, keep=True)
            planned = time.perf_counter()
            start_file(scan, CampaignEnqueuer(producer, CampaignStore(client, Keys(prefix))))
            enqueued = time.perf_counter()
            env = {**os.environ, "UNSIGN_REDIS_URL": url, "UNSIGN_KEY_PREFIX": prefix}
            cli = [str(Path(sys.executable).with_name("unsign-worker")), "campaign", "run",
                   str(path), "--detach", "--id", "bench-cli"]
            timings = []
            for _ in range(2):
                t0 = time.perf_counter()
                subprocess.run(cli, env=env, check=True, stdout=subprocess.DEVNULL)
                timings.append(time.perf_counter() - t0)
            sources = [Path(__file__).resolve().parent.parent, *(s.resolve() for s in args.source)]
            side_by_side: dict[Path, list[tuple[float, float]]] = {s: [] for s in sources}
            for _ in range(args.rounds if args.source else 0):
                for source in sources:
                    side_by_side[source].append(run_command(source, path, env))
        finally:
            app.close()
            delete_prefix(client, prefix)
    rows = args.rows
    print(f"rows: {rows}")
    print(f"read + validate: {planned - began:.2f} s")
    print(f"record + send (chunks of {CHUNK_SIZE}, {BATCH_SIZE} jobs per message): "
          f"{enqueued - planned:.2f} s")
    print(f"in-process total: {enqueued - began:.2f} s ({rows / (enqueued - began):,.0f} rows/s)")
    print(f"`unsign-worker campaign run FILE --detach`: {timings[0]:.2f} s "
          f"({rows / timings[0]:,.0f} rows/s)")
    print(f"same command again (every job skipped): {timings[1]:.2f} s")
    for source, runs in side_by_side.items():
        if runs:
            print(f"{source}: campaign run --detach, wall / CPU s per round: "
                  + ", ".join(f"{wall:.2f} / {cpu:.2f}" for wall, cpu in runs)
                  + f"; median CPU {sorted(c for _, c in runs)[len(runs) // 2]:.2f} s")


if __name__ == "__main__":
    main()
