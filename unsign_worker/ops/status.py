"""Status at a glance: queues, jobs in flight, recent rate, outcomes, dead letters, breaker,
workers. One pipelined read; :func:`collect` returns the stable JSON shape of
``unsign-worker status --json`` (docs/cli.md).
"""

from __future__ import annotations

import time
from typing import Any

import redis

from unsign_worker.store.breaker import Breaker
from unsign_worker.store.deadletter import DeadLetters
from unsign_worker.store.gateway_reach import parse as parse_unreachable
from unsign_worker.store.keys import HOOK_QUEUE, INBOX_GROUP, QUEUE, Keys
from unsign_worker.store.producer_registry import ProducerRegistry
from unsign_worker.store.states import TERMINAL_STATES, JobState

#: kombu's priority steps and separator: a queue with priorities is several lists.
PRIORITY_STEPS = (0, 3, 6, 9)
PRIORITY_SEP = "\x06\x16"
#: Minutes of ``P rate:<minute>`` counts summed for the recent rate.
RATE_MINUTES = 5
#: A worker whose last heartbeat is older than this is shown as not alive, seconds.
WORKER_STALE_SECONDS = 60.0
OUTCOMES = tuple(str(s) for s in JobState if s in TERMINAL_STATES)


def _queue_names(keys: Keys, name: str) -> list[str]:
    base = keys.queue(name)
    return [base if p == 0 else f"{base}{PRIORITY_SEP}{p}" for p in PRIORITY_STEPS]


def _int_map(raw: dict[bytes, bytes]) -> dict[str, int]:
    return {k.decode(): int(v) for k, v in raw.items()}


def collect(client: redis.Redis, keys: Keys, *, now: float | None = None) -> dict[str, Any]:
    """Everything ``unsign-worker status`` shows, as one JSON-able dict."""
    now = time.time() if now is None else now
    registry = ProducerRegistry(client, keys)
    producers = list(registry.all())
    streams = [keys.intake] + [keys.inbox(name) for name in producers]
    minute = int(now // 60)
    pipe = client.pipeline(transaction=False)
    queues = {QUEUE: _queue_names(keys, QUEUE), HOOK_QUEUE: _queue_names(keys, HOOK_QUEUE)}
    for names in queues.values():
        for name in names:
            pipe.llen(name)
    pipe.hlen(keys.unacked)
    pipe.zcard(keys.leases)
    pipe.zcard(keys.parked)
    for stream in streams:
        pipe.xlen(stream)
    pipe.hgetall(keys.counts)
    for m in range(minute - RATE_MINUTES + 1, minute + 1):
        pipe.hgetall(keys.rate(m))
    pipe.zrange(keys.workers, 0, -1, withscores=True)
    pipe.zrange(keys.campaigns, 0, -1)
    pipe.hgetall(keys.gateway_unreachable)
    out = pipe.execute()
    depth = {}
    for name, names in queues.items():
        depth[name] = sum(out[:len(names)])
        out = out[len(names):]
    unacked, leased, parked = out[:3]
    lengths = dict(zip(streams, out[3:3 + len(streams)], strict=True))
    counts = out[3 + len(streams)]
    out = out[4 + len(streams):]
    per_minute = out[:RATE_MINUTES]
    workers_raw, campaign_ids, unreachable_raw = out[RATE_MINUTES:]
    unreachable = parse_unreachable(unreachable_raw)
    campaign_parked = 0
    if campaign_ids:
        pipe = client.pipeline(transaction=False)
        for cid in campaign_ids:
            pipe.zcard(keys.campaign_parked(cid.decode()))
        campaign_parked = sum(pipe.execute())
    recent = [sum(_int_map(m).values()) for m in per_minute]
    window = (RATE_MINUTES - 1) * 60 + (now % 60)
    dlq = DeadLetters(client, keys)
    return {
        "time": now,
        "queues": depth,
        "unacked": int(unacked),
        "in_flight": int(leased),
        "parked": {"breaker": int(parked), "campaigns": int(campaign_parked)},
        "inbox": {"length": sum(int(n) for n in lengths.values()),
                  "pending": sum(_pending(client, s) for s in streams)},
        "producers": {name: {"waiting": int(lengths[keys.inbox(name)]),
                             "rejected": {reason: n for (who, reason), n
                                          in sorted(registry.rejected().items())
                                          if who == name}}
                      for name in producers},
        "rate": {"this_minute": recent[-1], "last_5_minutes": sum(recent),
                 "per_second": round(sum(recent) / window, 3) if window > 0 else 0.0},
        "outcomes": {o: _int_map(counts).get(o, 0) for o in OUTCOMES},
        "dlq": {"size": dlq.size(), "by_code": dlq.by_code()},
        "breaker": Breaker(client, keys, threshold=1, window_seconds=1).state().as_dict(),
        "workers": [{"hostname": host.decode(), "last_seen": seen,
                     "age_seconds": round(now - seen, 1),
                     "alive": now - seen <= WORKER_STALE_SECONDS,
                     "gateway_unreachable": unreachable.get(host.decode())}
                    for host, seen in sorted(workers_raw, key=lambda w: -w[1])],
    }


def _pending(client: redis.Redis, stream: str) -> int:
    """Entries of ``stream`` (a producer's, ``P intake``) read by a worker, not acknowledged."""
    try:
        info = client.xpending(stream, INBOX_GROUP)
    except redis.ResponseError:  # no stream or no group yet
        return 0
    return int(info.get("pending", 0)) if isinstance(info, dict) else 0


def outcomes(client: redis.Redis, keys: Keys, *, now: float | None = None
             ) -> dict[str, dict[str, int]]:
    """Jobs in each outcome, ``{"last_hour": {...}, "all_time": {...}}``, read together.

    Both count jobs by the outcome they hold: the scripts that end a job add it to ``P counts``
    and to its minute's ``P rate:<minute>`` (kept 25 hours), and a requeue takes a dead letter
    back from both. Read in one transaction, no job can end between the two reads, so the last
    hour never exceeds all time.
    """
    now = time.time() if now is None else now
    minute = int(now // 60)
    pipe = client.pipeline(transaction=True)
    pipe.hgetall(keys.counts)
    for m in range(minute - 59, minute + 1):
        pipe.hgetall(keys.rate(m))
    all_time, *minutes = pipe.execute()
    hour: dict[str, int] = {}
    for counts in minutes:
        for state, n in _int_map(counts).items():
            hour[state] = hour.get(state, 0) + n
    total = _int_map(all_time)
    return {"last_hour": {o: hour.get(o, 0) for o in OUTCOMES},
            "all_time": {o: total.get(o, 0) for o in OUTCOMES}}


def outcomes_by_hour(client: redis.Redis, keys: Keys, *, now: float | None = None,
                     hours: int = 24) -> list[tuple[int, dict[str, int]]]:
    """The outcomes of each of the last ``hours`` hours (UTC hours, the current one so far,
    last): ``(hour's start in epoch seconds, {outcome: jobs})``, from the per-minute counts
    (kept 25 hours) the last hour is counted from, read in one round trip."""
    now = time.time() if now is None else now
    first = (int(now // 3600) - hours + 1) * 60
    minutes = range(first, int(now // 60) + 1)
    pipe = client.pipeline(transaction=True)
    for minute in minutes:
        pipe.hgetall(keys.rate(minute))
    per_hour: dict[int, dict[str, int]] = {}
    for minute, counts in zip(minutes, pipe.execute(), strict=True):
        hour = per_hour.setdefault(minute // 60 * 3600, dict.fromkeys(OUTCOMES, 0))
        for state, n in _int_map(counts).items():
            if state in hour:
                hour[state] += n
    return sorted(per_hour.items())
