"""The inbox's own cost: CPU and wall time per entry of ``Inbox.poll_once`` taking ``--entries``
valid entries of ``P inbox`` (each with a reference), the hand-over to the broker stubbed.

    .venv/bin/python scripts/with_redis.py --db 14 -- .venv/bin/python benchmarks/inbox_cost.py

Redis: ``UNSIGN_REDIS_URL``; keys under ``bench:inbox-<id>:``, deleted at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import time

import redis

from unsign_worker.producers.producer import Producer, producer_app
from unsign_worker.store.keys import Keys
from unsign_worker.worker.inbox import Inbox


def run(client: redis.Redis, url: str, entries: int) -> dict[str, float]:
    prefix = f"bench:inbox-{secrets.token_hex(4)}:"
    keys = Keys(prefix)
    app = producer_app(url, prefix)
    handed: list[int] = []
    inbox = Inbox(client, keys, Producer(app, client, keys), consumer="bench",
                  hand_over=lambda jobs: handed.append(len(jobs)))
    try:
        inbox.ensure_group()
        pipe = client.pipeline(transaction=False)
        for n in range(entries):
            pipe.xadd(keys.inbox, {"job": json.dumps({"customer_code": f"C{n:011d}",
                                                      "reference": f"bench-{n}"})})
        pipe.execute()
        cpu, wall = time.process_time(), time.perf_counter()
        while sum(handed) < entries:
            inbox.poll_once(block_ms=1)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        return {"entries": entries, "cpu_ms_per_entry": round(1000 * cpu / entries, 3),
                "wall_ms_per_entry": round(1000 * wall / entries, 3)}
    finally:
        names = list(client.scan_iter(match=f"{prefix}*", count=1000))
        for start in range(0, len(names), 500):
            client.delete(*names[start:start + 500])
        app.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    url = os.environ.get("UNSIGN_REDIS_URL") or "redis://127.0.0.1:6379/14"
    client = redis.Redis.from_url(url)
    for _ in range(args.runs):
        print(run(client, url, args.entries))


if __name__ == "__main__":
    main()
