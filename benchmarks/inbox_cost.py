"""The inbox's own cost: CPU and wall time per entry of ``Inbox.poll_once`` taking ``--entries``
valid entries of one producer's stream ``P inbox:<name>`` (each with a reference; read inside
Redis with the producer's size and backlog checks, each bound to a random job id), the
hand-over to the broker stubbed.

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
from unsign_worker.store.producer_registry import DEFAULT_MAX_PENDING, ProducerRegistry
from unsign_worker.worker.inbox import Inbox

#: The producer whose stream the entries are added to.
PRODUCER = "bench"


def run(client: redis.Redis, url: str, entries: int) -> dict[str, float]:
    prefix = f"bench:inbox-{secrets.token_hex(4)}:"
    keys = Keys(prefix)
    app = producer_app(url, prefix)
    handed: list[int] = []
    inbox = Inbox(client, keys, Producer(app, client, keys), consumer="bench",
                  hand_over=lambda jobs: handed.append(len(jobs)))
    try:
        # a producer whose cap holds every entry: none is refused for the backlog
        ProducerRegistry(client, keys).add(PRODUCER, max_pending=max(entries,
                                                                     DEFAULT_MAX_PENDING))
        inbox.refresh()
        pipe = client.pipeline(transaction=False)
        for n in range(entries):
            pipe.xadd(keys.inbox(PRODUCER), {"job": json.dumps(
                {"customer_code": f"C{n:011d}", "reference": f"bench-{n}"})})
        pipe.execute()
        taken = 0
        cpu, wall = time.process_time(), time.perf_counter()
        while taken < entries:
            taken += inbox.poll_once(block_ms=1)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        if sum(handed) != entries:
            raise RuntimeError(f"{entries} entries taken, {sum(handed)} jobs handed over")
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
