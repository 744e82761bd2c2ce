"""How long enqueueing a 100,000-row campaign file takes (no worker needed).

Writes a campaign CSV with :func:`unsign_worker.emulator.seed.generate`, then times:

1. read + validate every row (``plan_file``), in this process;
2. record + send every job (``start``: campaign meta, job list, pipelined records, batched
   messages), in this process;
3. the whole ``unsign-worker campaign run FILE --detach`` command, as a user runs it
   (a second campaign id, so it enqueues everything again);
4. the same command once more: a re-run that skips every job.

Uses ``UNSIGN_REDIS_URL`` (default: redis://127.0.0.1:6379/13) under a fresh key prefix that is
deleted afterwards. Prints one line per figure.

    .venv/bin/python benchmarks/enqueue.py [--rows 100000]
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
from unsign_worker.producers.campaign.plan import plan_file, start
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
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
            plan = plan_file(path)
            planned = time.perf_counter()
            start(plan, CampaignEnqueuer(producer, CampaignStore(client, Keys(prefix))))
            enqueued = time.perf_counter()
            env = {**os.environ, "UNSIGN_REDIS_URL": url, "UNSIGN_KEY_PREFIX": prefix}
            cli = [str(Path(sys.executable).with_name("unsign-worker")), "campaign", "run",
                   str(path), "--detach", "--id", "bench-cli"]
            timings = []
            for _ in range(2):
                t0 = time.perf_counter()
                subprocess.run(cli, env=env, check=True, stdout=subprocess.DEVNULL)
                timings.append(time.perf_counter() - t0)
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


if __name__ == "__main__":
    main()
