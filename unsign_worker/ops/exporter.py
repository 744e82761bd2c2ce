"""Prometheus series Flower cannot show: dead-letter queue, breaker, queue depth, job outcomes.

Flower's ``/metrics`` knows only what task events tell it (runtimes, event counts, workers
online); it has no queue depth, and nothing of this project's own state. :class:`UnsignCollector`
reads that state from Redis at each scrape (a handful of O(1) calls, plus one pipelined pass
over at most :data:`DLQ_CODE_SCAN_LIMIT` dead-letter entries) and is registered into the same
registry, so one ``/metrics`` serves both. Series (all gauges unless noted):

==================================  =========================================================
``unsign_up``                       1 when the last scrape could read Redis, else 0
``unsign_dlq_size``                 jobs in the dead-letter queue
``unsign_dlq_jobs{code}``           the same, by error code
``unsign_breaker_open{code}``       1 while the circuit breaker is open (code: why)
``unsign_queue_depth{queue}``       messages waiting in a broker queue (Redis broker only)
``unsign_jobs_in_flight``           jobs holding a lease (being sent, or waiting for a retry)
``unsign_jobs_parked``              jobs parked while the breaker is open
``unsign_jobs_total{outcome}``      counter: jobs that reached each state, all time
``unsign_queue_oldest_age_seconds``  age of the oldest job waiting in the ``unsign`` queue
``unsign_workers_alive``            workers whose heartbeat is at most 60 s old
``unsign_worker_heartbeat_age_seconds{worker}``  seconds since each worker's last heartbeat
``unsign_gateway_reachable{worker}``  each live worker: 1 while it reaches the gateway, 0
                                    while the gateway is unreachable from it (it takes no job)
``unsign_hooks_pending``            success hooks waiting for a (re)try, failed ones included
``unsign_campaign_jobs{campaign,kind}``  running or paused campaigns: ``total`` and ``done``
``unsign_producer_waiting{producer}``  entries in each producer's stream, not yet taken
``unsign_producer_max_pending{producer}``  each producer's cap of entries waiting
``unsign_producer_rejected_total{producer,reason}``  counter: each producer's entries refused
                                    (``max_size``, ``max_pending``, ``entry_reused``: no job;
                                    ``invalid_job``, ``reference_conflict``, ``poison_entry``:
                                    recorded rejected)
==================================  =========================================================
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import redis
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from unsign_worker.store.gateway_reach import parse as parse_unreachable
from unsign_worker.store.keys import HOOK_QUEUE, QUEUE, Keys
from unsign_worker.store.producer_registry import ProducerRegistry
from unsign_worker.store.states import TERMINAL_STATES, BreakerStatus, CampaignState

TERMINAL_OUTCOMES = frozenset(str(s) for s in TERMINAL_STATES)

log = logging.getLogger(__name__)

#: Dead-letter entries read per scrape to count them by code (the newest first).
DLQ_CODE_SCAN_LIMIT = 10_000
#: A worker whose heartbeat is older than this is not counted alive, seconds.
WORKER_STALE_SECONDS = 60.0
#: Newest campaigns looked at per scrape (only running or paused ones become series).
CAMPAIGN_SCAN_LIMIT = 50


class UnsignCollector(Collector):
    """Reads the project's Redis state at scrape time.

    Parameters:
        client: the Redis holding the job state (``UNSIGN_REDIS_URL``).
        keys: the key builder for ``UNSIGN_KEY_PREFIX``.
        broker_is_redis: whether the broker queues live in that Redis (queue depth is read
            only then; with RabbitMQ use its own exporter).
    """

    def __init__(self, client: redis.Redis, keys: Keys, *, broker_is_redis: bool = True) -> None:
        self.redis = client
        self.keys = keys
        self.broker_is_redis = broker_is_redis

    def describe(self) -> list[Any]:
        return []  # collected lazily: never read Redis at registration

    def collect(self) -> Iterator[Any]:
        up = GaugeMetricFamily("unsign_up", "1 when the exporter could read the job store")
        try:
            families = list(self._collect())
        except redis.RedisError as exc:
            log.warning("metrics: cannot read Redis: %s", type(exc).__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _collect(self) -> Iterator[Any]:
        k = self.keys
        pipe = self.redis.pipeline(transaction=False)
        pipe.zcard(k.dlq)
        pipe.hgetall(k.breaker)
        pipe.zcard(k.leases)
        pipe.zcard(k.parked)
        pipe.hgetall(k.counts)
        if self.broker_is_redis:
            pipe.llen(k.queue(QUEUE))
            pipe.llen(k.queue(HOOK_QUEUE))
        replies = pipe.execute()
        dlq_size, breaker, leases, parked, counts = replies[:5]

        size = GaugeMetricFamily("unsign_dlq_size", "Jobs in the dead-letter queue")
        size.add_metric([], dlq_size)
        yield size
        by_code = GaugeMetricFamily("unsign_dlq_jobs", "Dead-lettered jobs by error code",
                                    labels=["code"])
        for code, n in sorted(self._dlq_codes().items()):
            by_code.add_metric([code], n)
        yield by_code

        state = _text(breaker.get(b"state")) or BreakerStatus.CLOSED
        gauge = GaugeMetricFamily("unsign_breaker_open",
                                  "1 while the circuit breaker stops the line", labels=["code"])
        gauge.add_metric([_text(breaker.get(b"code")) if state == BreakerStatus.OPEN else ""],
                         1 if state == BreakerStatus.OPEN else 0)
        yield gauge

        if self.broker_is_redis:
            depth = GaugeMetricFamily("unsign_queue_depth", "Messages waiting in a broker queue",
                                      labels=["queue"])
            depth.add_metric([QUEUE], replies[5])
            depth.add_metric([HOOK_QUEUE], replies[6])
            yield depth
        flight = GaugeMetricFamily("unsign_jobs_in_flight",
                                   "Jobs holding a lease (sending, or waiting for a retry)")
        flight.add_metric([], leases)
        yield flight
        park = GaugeMetricFamily("unsign_jobs_parked", "Jobs parked while the breaker is open")
        park.add_metric([], parked)
        yield park
        total = CounterMetricFamily("unsign_jobs", "Jobs that reached each state, all time",
                                    labels=["outcome"])
        for outcome, n in sorted((_text(o), int(v)) for o, v in counts.items()):
            total.add_metric([outcome], n)
        yield total
        yield from self._more(replies[5] if self.broker_is_redis else 0)

    def _more(self, depth: int) -> Iterator[Any]:
        """Queue age, worker heartbeats, hooks, campaign progress."""
        k, now = self.keys, time.time()
        pipe = self.redis.pipeline(transaction=False)
        pipe.lindex(k.queue(QUEUE), -1)  # kombu pushes left and pops right: -1 is the oldest
        pipe.zrange(k.workers, 0, -1, withscores=True)
        pipe.zcard(k.hooks)
        pipe.zrevrange(k.campaigns, 0, CAMPAIGN_SCAN_LIMIT - 1)
        pipe.hgetall(k.gateway_unreachable)
        oldest_raw, workers, hooks, campaigns, unreachable_raw = pipe.execute()
        oldest = _enqueued_at(oldest_raw) if (self.broker_is_redis and depth) else None
        age = GaugeMetricFamily("unsign_queue_oldest_age_seconds",
                                "Age of the oldest job waiting in the unsign queue (0: none)")
        age.add_metric([], max(0.0, now - oldest) if oldest else 0.0)
        yield age
        alive = GaugeMetricFamily("unsign_workers_alive",
                                  "Workers whose heartbeat is at most 60 s old")
        alive.add_metric([], sum(1 for _, seen in workers if now - seen <= WORKER_STALE_SECONDS))
        yield alive
        beat = GaugeMetricFamily("unsign_worker_heartbeat_age_seconds",
                                 "Seconds since each worker's last heartbeat", labels=["worker"])
        for host, seen in workers:
            beat.add_metric([_text(host)], max(0.0, now - seen))
        yield beat
        unreachable = parse_unreachable(unreachable_raw)
        reach = GaugeMetricFamily("unsign_gateway_reachable",
                                  "1 while a live worker reaches the gateway, 0 while it cannot "
                                  "(it takes no job then)", labels=["worker"])
        for host, seen in workers:
            if now - seen <= WORKER_STALE_SECONDS:
                reach.add_metric([_text(host)], 0 if _text(host) in unreachable else 1)
        yield reach
        pending = GaugeMetricFamily("unsign_hooks_pending",
                                    "Success hooks waiting for a (re)try, failed ones included")
        pending.add_metric([], hooks)
        yield pending
        yield self._campaigns([_text(c) for c in campaigns])
        yield from self._producers()

    def _producers(self) -> Iterator[Any]:
        registry = ProducerRegistry(self.redis, self.keys)
        producers = registry.all()
        waiting = GaugeMetricFamily("unsign_producer_waiting",
                                    "Entries in each producer's stream, not yet taken",
                                    labels=["producer"])
        for name, n in registry.waiting(list(producers)).items():
            waiting.add_metric([name], n)
        yield waiting
        cap = GaugeMetricFamily("unsign_producer_max_pending",
                                "Each producer's cap of entries waiting", labels=["producer"])
        for name, settings in producers.items():
            cap.add_metric([name], settings.max_pending)
        yield cap
        rejected = CounterMetricFamily("unsign_producer_rejected",
                                       "Entries of each producer refused, by reason",
                                       labels=["producer", "reason"])
        for (name, reason), n in sorted(registry.rejected().items()):
            rejected.add_metric([name, reason], n)
        yield rejected

    def _campaigns(self, ids: list[str]) -> Any:
        family = GaugeMetricFamily("unsign_campaign_jobs", "Jobs of a running or paused "
                                   "campaign: total, and done (ended)",
                                   labels=["campaign", "kind"])
        pipe = self.redis.pipeline(transaction=False)
        for cid in ids:
            pipe.hmget(self.keys.campaign(cid), "state", "total")
            pipe.hgetall(self.keys.campaign_counts(cid))
        replies = pipe.execute()
        for i, cid in enumerate(ids):
            state, total = replies[2 * i]
            if _text(state) not in (CampaignState.RUNNING, CampaignState.PAUSED):
                continue
            done = sum(int(v) for o, v in replies[2 * i + 1].items()
                       if _text(o) in TERMINAL_OUTCOMES)
            family.add_metric([cid, "total"], int(_text(total) or 0))
            family.add_metric([cid, "done"], done)
        return family

    def _dlq_codes(self) -> Counter[str]:
        ids = self.redis.zrevrange(self.keys.dlq, 0, DLQ_CODE_SCAN_LIMIT - 1)
        pipe = self.redis.pipeline(transaction=False)
        for job_id in ids:
            pipe.hget(self.keys.dlq_entry(_text(job_id)), "code")
        return Counter(_text(code) or "UNKNOWN" for code in pipe.execute())


def _enqueued_at(raw: bytes | None) -> float | None:
    """``enqueued_at`` of the job (or first job of a batch) in a raw kombu Redis message."""
    if not raw:
        return None
    try:
        message = json.loads(raw)
        body = message["body"]
        if message.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        _args, kwargs, _embed = json.loads(body)
        job = kwargs.get("job") or (kwargs.get("jobs") or [{}])[0]
        value = job.get("enqueued_at")
        return float(value) if isinstance(value, (int, float)) else None
    except (ValueError, KeyError, TypeError, IndexError, AttributeError):
        return None  # not a job message (a hook retry, or a foreign message)


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else value
