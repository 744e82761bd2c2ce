"""``status.collect``: every figure read from the keys the worker writes (real Redis)."""

from __future__ import annotations

import redis

from unsign_worker.ops.status import PRIORITY_SEP, collect
from unsign_worker.store.gateway_reach import UnreachableWorkers
from unsign_worker.store.keys import HOOK_QUEUE, INBOX_GROUP, QUEUE, Keys
from unsign_worker.store.producer_registry import ProducerRegistry

NOW = 1_764_139_980.0 + 30  # 30 s into a minute


def test_an_empty_system_reports_zeros_and_a_closed_breaker(redis_client: redis.Redis,
                                                            key_prefix: str) -> None:
    data = collect(redis_client, Keys(key_prefix), now=NOW)
    assert data["queues"] == {QUEUE: 0, HOOK_QUEUE: 0}
    assert (data["unacked"], data["in_flight"]) == (0, 0)
    assert data["parked"] == {"breaker": 0, "campaigns": 0}
    assert data["inbox"] == {"length": 0, "pending": 0}
    assert data["rate"] == {"this_minute": 0, "last_5_minutes": 0, "per_second": 0.0}
    assert set(data["outcomes"].values()) == {0}
    assert data["dlq"] == {"size": 0, "by_code": {}}
    assert data["breaker"]["state"] == "closed"
    assert data["workers"] == []


def test_status_reads_queues_leases_rates_counts_dlq_breaker_and_workers(
        redis_client: redis.Redis, key_prefix: str) -> None:
    k, r = Keys(key_prefix), redis_client
    r.rpush(k.queue(), "m1", "m2")
    r.rpush(k.queue() + PRIORITY_SEP + "3", "m3")
    r.rpush(k.queue(HOOK_QUEUE), "h1")
    r.hset(k.unacked, mapping={"t1": "x"})
    r.zadd(k.leases, {"j1": NOW + 60, "j2": NOW + 60})
    r.zadd(k.parked, {"j3": NOW})
    r.zadd(k.campaigns, {"c1": NOW})
    r.zadd(k.campaign_parked("c1"), {"j4": NOW, "j5": NOW})
    ProducerRegistry(r, k).add("crm")
    r.xgroup_create(k.inbox("crm"), INBOX_GROUP, id="0", mkstream=True)
    r.xadd(k.inbox("crm"), {"customer_code": "C1"})
    r.xreadgroup(INBOX_GROUP, "w1", {k.inbox("crm"): ">"})
    r.xadd(k.intake, {"job": "{}"})  # an operator's job, not yet read
    r.hset(k.producers_rejected, mapping={"crm:max_size": 2, "crm:invalid_job": 1})
    minute = int(NOW // 60)
    r.hset(k.rate(minute), mapping={"unsigned": 30})
    r.hset(k.rate(minute - 2), mapping={"unsigned": 200, "rejected": 10})
    r.hset(k.rate(minute - 9), mapping={"unsigned": 999})  # too old to count
    r.hset(k.counts, mapping={"unsigned": 5000, "dead_lettered": 2})
    for job_id, code in (("d1", "TOO_MUCH_TYPE_CODE"), ("d2", "TOO_MUCH_TYPE_CODE"),
                         ("d3", "SYSTEM_ERROR")):
        r.zadd(k.dlq, {job_id: NOW})
        r.hset(k.dlq_entry(job_id), mapping={"code": code})
    r.hset(k.breaker, mapping={"state": "open", "code": "ILLEGAL_SIGN", "reason": "bad sign",
                               "opened_at": NOW - 5, "halts": 3})
    r.zadd(k.workers, {"w1@a": NOW - 2, "w2@b": NOW - 600})
    UnreachableWorkers(r, k).mark("w1@a", since=NOW - 30, cause="connect timeout")
    data = collect(r, k, now=NOW)
    assert data["queues"] == {QUEUE: 3, HOOK_QUEUE: 1}
    assert (data["unacked"], data["in_flight"]) == (1, 2)
    assert data["parked"] == {"breaker": 1, "campaigns": 2}
    assert data["inbox"] == {"length": 2, "pending": 1}
    assert data["producers"] == {"crm": {"waiting": 1,
                                         "rejected": {"invalid_job": 1, "max_size": 2}}}
    assert data["rate"]["this_minute"] == 30 and data["rate"]["last_5_minutes"] == 240
    assert data["rate"]["per_second"] == round(240 / 270, 3)
    assert data["outcomes"]["unsigned"] == 5000 and data["outcomes"]["dead_lettered"] == 2
    assert data["dlq"] == {"size": 3, "by_code": {"TOO_MUCH_TYPE_CODE": 2, "SYSTEM_ERROR": 1}}
    assert (data["breaker"]["state"], data["breaker"]["code"]) == ("open", "ILLEGAL_SIGN")
    assert [(w["hostname"], w["alive"]) for w in data["workers"]] == [("w1@a", True),
                                                                      ("w2@b", False)]
    assert [w["gateway_unreachable"] for w in data["workers"]] == [
        {"since": NOW - 30, "cause": "connect timeout"}, None]
