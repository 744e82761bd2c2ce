"""Every lease is written on the Redis server's clock: a caller whose own clock is ten minutes
off (``time.time`` shifted here) writes the same leases as one whose clock is right; it passes
how long a lease lasts, never what time it is."""

from __future__ import annotations

import time
import uuid

import pytest
import redis

from unsign_worker.store.breaker import Breaker
from unsign_worker.store.claims import ClaimStatus, DedupStore
from unsign_worker.store.clock import server_now
from unsign_worker.store.hook_records import HookRecords
from unsign_worker.store.job import Job
from unsign_worker.store.job_records import JobRecords
from unsign_worker.store.keys import Keys
from unsign_worker.store.recovery import HeldMessages

LEASE = 30.0
#: how far the caller's clock is off
SKEWS = [600.0, -600.0]
#: slack for the round trips between reading the server's clock and the write
SLACK = 2.0


@pytest.fixture(params=SKEWS, ids=["ahead", "behind"])
def skewed(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> float:
    real = time.time
    skew = float(request.param)
    monkeypatch.setattr(time, "time", lambda: real() + skew)
    return skew


@pytest.fixture
def keys(key_prefix: str) -> Keys:
    return Keys(key_prefix)


def near_server_time(client: redis.Redis, value: float, after: float) -> None:
    """``value`` is ``after`` seconds from the server's clock now (give or take a round trip)."""
    expected = server_now(client) + after
    assert expected - SLACK <= value <= expected + SLACK, (value, expected)


def claim(dedup: DedupStore, job_id: str, *, lease_seconds: float = LEASE,
          renew_token: str = "") -> ClaimStatus | str:
    found = dedup.claim(job_id=job_id, identity=f"agr-{job_id}",
                        identity_masked="customer_code:C***", params_json="{}", campaign="",
                        reference="", lease_seconds=lease_seconds, probe_after_seconds=60,
                        renew_token=renew_token)
    assert found is not None
    return found.status if not renew_token else found.token


def test_a_claim_and_its_renewal_lease_from_the_servers_clock(
        redis_client: redis.Redis, keys: Keys, skewed: float) -> None:
    dedup, job_id = DedupStore(redis_client, keys), uuid.uuid4().hex
    assert claim(dedup, job_id) == ClaimStatus.CLAIMED
    lease = float(redis_client.hget(keys.agreement(f"agr-{job_id}"), "lease_until"))
    near_server_time(redis_client, lease, LEASE)
    near_server_time(redis_client, redis_client.zscore(keys.leases, job_id), LEASE)
    # a second delivery finds the lease live, whatever its clock says
    assert claim(dedup, job_id) == ClaimStatus.BUSY


def test_message_leases_hook_leases_and_queued_checks_run_on_the_servers_clock(
        redis_client: redis.Redis, keys: Keys, skewed: float) -> None:
    held = HeldMessages(redis_client, keys, lease_seconds=LEASE)
    held.record("m1", ["j1"])
    near_server_time(redis_client, redis_client.zscore(keys.held, "m1"), LEASE)
    redis_client.zadd(keys.held, {"m1": 0})
    assert held.renew(["m1"]) == 1
    near_server_time(redis_client, redis_client.zscore(keys.held, "m1"), LEASE)

    redis_client.hset(keys.hook("agr"), mapping={"state": "pending", "event": "{}"})
    hooks = HookRecords(redis_client, keys)
    assert hooks.claim("agr", lease_seconds=LEASE).attempts == 1
    near_server_time(redis_client, redis_client.zscore(keys.hooks, "agr"), LEASE)
    assert hooks.claim("agr", lease_seconds=LEASE).status == "busy"
    hooks.mark_failed("agr", error="boom", retry_in=5)
    near_server_time(redis_client, redis_client.zscore(keys.hooks, "agr"), 5)

    job = Job(job_id=uuid.uuid4().hex, params={"customer_code": "C1"})
    JobRecords(redis_client, keys, queued_grace_seconds=10).write_queued([job])
    near_server_time(redis_client, redis_client.zscore(keys.leases, job.job_id), 10)


def test_the_breaker_opens_on_the_servers_clock(
        redis_client: redis.Redis, keys: Keys, skewed: float) -> None:
    breaker = Breaker(redis_client, keys, threshold=1, window_seconds=60)
    assert breaker.record_halt("ILLEGAL_SIGN", "bad signature") == "opened"
    opened_at = breaker.state().opened_at
    assert opened_at is not None
    near_server_time(redis_client, opened_at, 0)


def test_a_worker_renews_however_many_messages_it_holds(redis_client: redis.Redis,
                                                        keys: Keys) -> None:
    # a worker holding thousands of delayed retries passes all their ids (only those recorded
    # are renewed): more than a script can take as arguments at once
    held = HeldMessages(redis_client, keys, lease_seconds=LEASE)
    ids = [f"m{i}" for i in range(12_000)]
    for message_id in ids[:3]:
        held.record(message_id, ["j1"])
    assert held.renew(ids) == 3
    assert redis_client.zcard(keys.held) == 3
