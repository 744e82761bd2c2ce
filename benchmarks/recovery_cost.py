"""What the crash-recovery bookkeeping costs per campaign (see unsign_worker/store/recovery.py).

In-process against the benchmark's Redis, for ``--jobs`` jobs in messages of ``--batch-size``:

- ``held_us_per_message``: a worker leasing a message it received and releasing it when done
  (two pipelined round trips per message, whatever its number of jobs);
- ``renew_ms_per_pass``: one renewal of ``--held`` messages a worker holds (every sweep);
- ``leases_us_per_job``: the ``P leases`` entry every queued job gets at enqueue (timed as a
  ZADD NX of the same members the enqueue script adds);
- ``idle_sweep_ms``: one sweep pass with nothing to recover (lock, renewal, leases, hooks);
- ``backlog_look_ms``: one look for the queued jobs' messages with all ``--jobs`` waiting in
  the broker's queue (what the sweeper pays once per lease while a backlog older than a lease
  waits: it reads every message of the queue).

``benchmarks/campaign.py`` prints these figures after its runs; standalone:

    .venv/bin/python benchmarks/recovery_cost.py [--jobs 5000] [--batch-size 25]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import time
import uuid
from typing import Any

import redis

from unsign_worker.store.job import UNSIGN_BATCH_TASK
from unsign_worker.store.keys import Keys
from unsign_worker.store.recovery import HeldMessages, queued_in_broker
from unsign_worker.worker.sweeper import Sweeper


def measure(client: redis.Redis, prefix: str, *, jobs: int = 5000, batch_size: int = 25,
            held: int = 128, lease_seconds: float = 300.0) -> dict[str, Any]:
    keys = Keys(prefix)
    holder = HeldMessages(client, keys, lease_seconds=lease_seconds)
    ids = [uuid.uuid4().hex for _ in range(jobs)]
    messages = [(uuid.uuid4().hex, ids[s:s + batch_size]) for s in range(0, jobs, batch_size)]
    try:
        started = time.perf_counter()
        for message_id, job_ids in messages:
            holder.record(message_id, job_ids)
            holder.release(message_id)
        held_s = time.perf_counter() - started
        for message_id, job_ids in messages[:held]:
            holder.record(message_id, job_ids)
        started = time.perf_counter()
        holder.renew([m for m, _ in messages[:held]])
        renew_s = time.perf_counter() - started
        started = time.perf_counter()
        for s in range(0, jobs, 2000):
            client.zadd(keys.leases, dict.fromkeys(ids[s:s + 2000], time.time() + 3600), nx=True)
        leases_s = time.perf_counter() - started
        sweeper = Sweeper(client, keys, lease_seconds=lease_seconds, probe_after_seconds=60,
                          publish_job=lambda job: None, publish_hook=lambda identity: None,
                          hostname="bench", held_ids=lambda: [m for m, _ in messages[:held]])
        sweeper.sweep_once()  # records the Redis run id
        client.delete(keys.sweeper)
        started = time.perf_counter()
        sweeper.sweep_once()
        sweep_s = time.perf_counter() - started
        for message_id, job_ids in messages:
            client.lpush(keys.queue(), kombu_message(message_id, job_ids))
        started = time.perf_counter()
        found = queued_in_broker(client, keys)
        look_s = time.perf_counter() - started
        assert len(found) == jobs
    finally:
        for key in client.scan_iter(match=f"{prefix}*", count=1000):
            client.delete(key)
    return {"jobs": jobs, "batch_size": batch_size, "messages": len(messages),
            "held_us_per_message": round(held_s / len(messages) * 1e6, 1),
            "renew_ms_per_pass": round(renew_s * 1e3, 2), "held": min(held, len(messages)),
            "leases_us_per_job": round(leases_s / jobs * 1e6, 2),
            "idle_sweep_ms": round(sweep_s * 1e3, 2),
            "backlog_look_ms": round(look_s * 1e3, 2)}


def kombu_message(message_id: str, job_ids: list[str]) -> str:
    """A task message as kombu's Redis transport stores it (a campaign batch of jobs)."""
    jobs = [{"job_id": j, "params": {"customer_code": "C" + j[:11]}, "campaign": "bench",
             "reference": j, "enqueued_at": 0.0} for j in job_ids]
    body = json.dumps([[], {"jobs": jobs}, {}])
    return json.dumps({"body": base64.b64encode(body.encode()).decode(),
                       "headers": {"task": UNSIGN_BATCH_TASK, "id": message_id},
                       "properties": {"body_encoding": "base64"}})


def describe(figures: dict[str, Any]) -> str:
    return (f"crash-recovery bookkeeping: {figures['held_us_per_message']} µs per message "
            f"(lease + release), {figures['leases_us_per_job']} µs per job (queued index), "
            f"{figures['renew_ms_per_pass']} ms per renewal of {figures['held']} held messages, "
            f"{figures['idle_sweep_ms']} ms per idle sweep pass, "
            f"{figures['backlog_look_ms']} ms per look at a backlog of {figures['jobs']} jobs "
            f"({figures['messages']} messages)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--batch-size", type=int, default=25)
    args = parser.parse_args()
    client = redis.Redis.from_url(os.environ.get("UNSIGN_REDIS_URL")
                                  or "redis://127.0.0.1:6379/14")
    figures = measure(client, f"bench:{uuid.uuid4().hex[:8]}:recovery:", jobs=args.jobs,
                      batch_size=args.batch_size)
    print(describe(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
