"""Finding a job by its reference: the operator's references, and each producer's own."""

from __future__ import annotations

import redis

from unsign_worker.ops.lookup import find_job_id
from unsign_worker.store.keys import Keys
from unsign_worker.store.producer_registry import ProducerRegistry

OPERATOR_JOB, CRM_JOB, BILLING_JOB = "a" * 32, "b" * 32, "c" * 32


def test_a_reference_is_found_among_the_operators_then_the_one_producer_that_has_it(
        redis_client: redis.Redis, key_prefix: str) -> None:
    r, k = redis_client, Keys(key_prefix)
    registry = ProducerRegistry(r, k)
    registry.add("crm")
    registry.add("billing")
    r.set(f"{key_prefix}ref:op-1", OPERATOR_JOB)
    r.set(f"{key_prefix}producer:crm:ref:order-1", CRM_JOB)
    r.set(f"{key_prefix}producer:crm:ref:shared", CRM_JOB)
    r.set(f"{key_prefix}producer:billing:ref:shared", BILLING_JOB)
    r.hset(f"{key_prefix}job:{CRM_JOB}", "state", "queued")

    assert find_job_id(r, k, "op-1") == OPERATOR_JOB
    assert find_job_id(r, k, " order-1 ") == CRM_JOB
    assert find_job_id(r, k, CRM_JOB) == CRM_JOB
    # two producers use the same reference: which one is meant must be said
    assert find_job_id(r, k, "shared") is None
    assert find_job_id(r, k, "shared", producer="billing") == BILLING_JOB
    assert find_job_id(r, k, "order-1", producer="billing") is None
    assert find_job_id(r, k, "nothing") is None
