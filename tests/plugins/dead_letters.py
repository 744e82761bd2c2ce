"""Dead letters written straight into Redis, the way the worker's settle script leaves them:
one for a precise test, or thousands at once for the console at volume."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence

import redis

from unsign_worker.protocol.catalogue import lookup
from unsign_worker.store.keys import Keys


def dead_letter(r: redis.Redis | redis.client.Pipeline, keys: Keys, job_id: str, *,
                code: str = "TOO_MUCH_TYPE_CODE", campaign: str = "",
                now: float | None = None) -> None:
    """A job dead-lettered the way the worker's settle script leaves it."""
    entry = lookup(code)
    now = time.time() if now is None else now
    r.hset(keys.job(job_id), mapping={
        "job_id": job_id, "state": "dead_lettered", "code": code, "reason": entry.en,
        "params": json.dumps({"customer_code": "C00000000001"}), "campaign": campaign,
        "reference": f"ref-{job_id}", "attempts": 3, "first_failure_at": repr(now - 60),
        "finished_at": repr(now)})
    r.hset(keys.dlq_entry(job_id), mapping={
        "job_id": job_id, "kind": "escalate", "code": code, "zh": entry.zh, "en": entry.en,
        "category": str(entry.category), "advice": entry.advice, "reason": entry.en,
        "attempts": 3, "identity": "abc", "identity_masked": "customer_code:C00000000001",
        "job": json.dumps({"job_id": job_id, "params": {"customer_code": "C00000000001"}}),
        "campaign": campaign, "reference": f"ref-{job_id}", "dead_lettered_at": repr(now)})
    r.zadd(keys.dlq, {job_id: now})
    r.hincrby(keys.counts, "dead_lettered", 1)
    r.hincrby(keys.rate(int(now // 60)), "dead_lettered", 1)
    r.expire(keys.rate(int(now // 60)), 3600)
    if campaign:
        r.hincrby(keys.campaign_counts(campaign), "dead_lettered", 1)
        r.hincrby(keys.campaign_progress(campaign), f"{int(now // 10) * 10}:dead_lettered", 1)


def dead_letters(r: redis.Redis, keys: Keys, counts: dict[str, int], *,
                 campaigns: Sequence[str] = ("",), start: float | None = None) -> list[str]:
    """``counts[code]`` dead letters of each code, one a second from ``start`` (default: as
    many seconds ago as there are), the campaigns taken in turn; returns their ids in order."""
    total = sum(counts.values())
    start = time.time() - total if start is None else start
    ids: list[str] = []
    pipe = r.pipeline(transaction=False)
    for code, n in counts.items():
        for _ in range(n):
            job_id = f"dl{len(ids):06d}"
            dead_letter(pipe, keys, job_id, code=code, now=start + len(ids),
                        campaign=campaigns[len(ids) % len(campaigns)])
            ids.append(job_id)
    pipe.execute()
    return ids
