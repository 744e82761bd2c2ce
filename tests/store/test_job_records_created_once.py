"""A job's record is created once and never overwritten by a producer's write, whoever names
its job id (store/job_records.py): queued records, single or pipelined, and rejections."""

from __future__ import annotations

import json
import time

import redis

from unsign_worker.store.job import Job
from unsign_worker.store.job_records import JobRecords
from unsign_worker.store.keys import Keys


def job(job_id: str, code: str) -> Job:
    return Job(job_id=job_id, params={"customer_code": code}, enqueued_at=time.time())


def test_a_queued_record_is_written_once_and_never_over_another(
        redis_client: redis.Redis, key_prefix: str) -> None:
    keys, records = Keys(key_prefix), JobRecords(redis_client, Keys(key_prefix))
    # Given a job that already ended unsigned
    redis_client.hset(keys.job("victim"), mapping={"job_id": "victim", "state": "unsigned",
                                                   "params": '{"customer_code": "C1"}'})

    # When a producer's write names the same job id with other parameters, beside a new job
    existed = records.write_queued([job("victim", "EVIL"), job("fresh", "C2")])

    # Then the victim's record is untouched, the new one is queued, and the caller is told
    assert existed == {0}
    victim = redis_client.hgetall(keys.job("victim"))
    assert victim[b"state"] == b"unsigned" and json.loads(victim[b"params"]) == {
        "customer_code": "C1"}
    assert redis_client.hget(keys.job("fresh"), "state") == b"queued"
    assert redis_client.zscore(keys.leases, "victim") is None
    assert redis_client.zscore(keys.leases, "fresh") is not None


def test_a_pipelined_write_in_a_transaction_creates_only_absent_records(
        redis_client: redis.Redis, key_prefix: str) -> None:
    keys, records = Keys(key_prefix), JobRecords(redis_client, Keys(key_prefix))
    redis_client.hset(keys.job("old"), mapping={"job_id": "old", "state": "queued",
                                                "params": '{"customer_code": "C1"}'})
    pipe = redis_client.pipeline(transaction=True)
    assert records.write_queued([job("old", "EVIL"), job("new", "C3")], pipe=pipe) is None
    pipe.xadd(keys.intake, {"job": "x"})
    reply = pipe.execute()

    assert reply[0] == [1]
    assert json.loads(redis_client.hget(keys.job("old"), "params")) == {"customer_code": "C1"}
    assert json.loads(redis_client.hget(keys.job("new"), "params")) == {"customer_code": "C3"}


def test_a_rejection_never_overwrites_an_existing_record(
        redis_client: redis.Redis, key_prefix: str) -> None:
    keys, records = Keys(key_prefix), JobRecords(redis_client, Keys(key_prefix))
    redis_client.hset(keys.job("done"), mapping={"job_id": "done", "state": "unsigned"})

    assert records.record_rejected("done", reference="r", code="INVALID_JOB", reason="bad",
                                   source="inbox") is False
    assert records.record_rejected("new", reference="r", code="INVALID_JOB", reason="bad",
                                   source="inbox") is True
    assert records.record_rejected("new", reference="r", code="INVALID_JOB", reason="bad",
                                   source="inbox") is False  # read again: counted once

    assert redis_client.hget(keys.job("done"), "state") == b"unsigned"
    assert redis_client.hget(keys.job("new"), "state") == b"rejected"
    assert int(redis_client.hget(keys.counts, "rejected")) == 1
