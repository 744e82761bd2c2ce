"""The sweeper finds queued jobs the broker hid (a dead worker's prefetched messages) or lost (a
Redis restart), and leaves a plain backlog alone. Real Redis, real kombu messages."""

from __future__ import annotations

import json
import time
import uuid

import pytest
import redis

from tests.plugins.campaign_plan import run_jobs
from unsign_worker.producers.producer import Producer, producer_app
from unsign_worker.store.claims import ClaimStatus, DedupStore
from unsign_worker.store.clock import server_now
from unsign_worker.store.job import Job
from unsign_worker.store.keys import Keys
from unsign_worker.worker.sweeper import Sweeper

LEASE = 10.0


@pytest.fixture
def keys(key_prefix: str) -> Keys:
    return Keys(key_prefix)


@pytest.fixture
def producer(redis_url: str, redis_client: redis.Redis, keys: Keys) -> Producer:
    app = producer_app(redis_url, keys.prefix)
    return Producer(app, redis_client, keys, queued_grace_seconds=3600)


def sweeper(client: redis.Redis, keys: Keys, published: list[str],
            held_ids: list[str] | None = None) -> Sweeper:
    return Sweeper(client, keys, lease_seconds=LEASE, probe_after_seconds=60,
                   publish_job=lambda job: published.append(job["job_id"]),
                   publish_hook=lambda identity: None, hostname="w-test",
                   held_ids=(lambda: list(held_ids)) if held_ids is not None else None)


def jobs(n: int) -> list[Job]:
    return [Job(job_id=uuid.uuid4().hex, params={"customer_code": f"C{i:05d}"})
            for i in range(n)]


def sweep(s: Sweeper, client: redis.Redis, keys: Keys, now: float | None
          ) -> dict[str, int]:
    client.delete(keys.sweeper)  # one pass per call, whatever the lock's timing
    return s.sweep_once(now)


def test_the_queued_jobs_of_a_message_whose_worker_stopped_renewing_are_republished(
        redis_client, keys, producer):
    published: list[str] = []
    s = sweeper(redis_client, keys, published)
    now = time.time()
    sweep(s, redis_client, keys, now)  # the first pass records the Redis run id
    batch = jobs(3)
    producer.write_records(batch)
    redis_client.hset(keys.job(batch[2].job_id), "state", "unsigned")
    # a worker received the batch message, then died (nobody renews the lease)
    s.held.record("msg-1", [j.job_id for j in batch])
    sweep(s, redis_client, keys, now + LEASE / 2)
    assert published == []
    sweep(s, redis_client, keys, now + LEASE + 1)
    assert sorted(published) == sorted(j.job_id for j in batch[:2])  # not the unsigned one
    assert redis_client.zcard(keys.held) == 0
    assert not redis_client.exists(keys.held_message("msg-1"))


def test_a_live_worker_renews_the_messages_it_holds(redis_client, keys, producer):
    batch = jobs(2)
    producer.write_records(batch)
    published: list[str] = []
    holding = ["msg-2"]
    s = sweeper(redis_client, keys, published, held_ids=holding)
    s.held.record("msg-2", [j.job_id for j in batch])
    for _ in range(3):
        # its lease nearly over, as a lease later: each pass renews it before looking
        redis_client.zadd(keys.held, {"msg-2": time.time() + 0.5})
        sweep(s, redis_client, keys, time.time() + 1)
    assert published == []
    holding.clear()  # the worker finished it but died before releasing: nothing to redo
    s.held.release("msg-2")
    assert redis_client.zcard(keys.held) == 0


def test_after_a_redis_restart_jobs_whose_message_vanished_are_republished_at_once(
        redis_client, keys, producer):
    kept, lost, admitted = jobs(2), jobs(2), jobs(2)
    producer.enqueue(kept, batch_size=2)  # record and a real message in the broker's queue
    producer.write_records(lost)  # the record survived, the message did not
    producer.admit(admitted)  # record and entry in P intake, not yet read by a worker
    published: list[str] = []
    s = sweeper(redis_client, keys, published)
    now = time.time()
    sweep(s, redis_client, keys, now)
    published.clear()
    sweep(s, redis_client, keys, now + 1)
    assert published == []  # no restart: nothing is due for an hour
    redis_client.set(keys.redis_run, "run-id-before-the-restart")
    sweep(s, redis_client, keys, now + 2)
    assert sorted(published) == sorted(j.job_id for j in lost)


def test_a_queued_job_whose_message_waits_is_left_alone_and_looked_at_again_a_lease_later(
        redis_client, keys, producer):
    waiting, gone = jobs(1), jobs(1)
    producer.enqueue(waiting)
    producer.write_records(gone)
    published: list[str] = []
    s = sweeper(redis_client, keys, published)
    later = time.time() + 3601  # both grace periods ran out
    sweep(s, redis_client, keys, later)
    assert published == [gone[0].job_id]
    assert redis_client.zscore(keys.leases, waiting[0].job_id) == later + LEASE


def test_campaign_jobs_are_in_the_leases_index(redis_client, keys, producer):
    from unsign_worker.producers.campaign.enqueue import CampaignEnqueuer
    from unsign_worker.store.campaigns import CampaignStore

    store = CampaignStore(redis_client, keys)
    campaign = "c-leases"
    store.begin(campaign, name="leases", source="t.csv", total=3, rejected=0, rate=None)
    batch = [Job(job_id=uuid.uuid4().hex, params={"customer_code": f"C{i:05d}"},
                 campaign=campaign) for i in range(3)]
    run_jobs(CampaignEnqueuer(producer, store, batch_size=3), campaign, batch, fresh=True)
    scores = [redis_client.zscore(keys.leases, j.job_id) for j in batch]
    assert all(s is not None and s > time.time() + 3000 for s in scores), scores


def test_a_due_hook_is_sent_again_and_not_due_before_a_lease_has_passed(redis_client, keys):
    sent: list[str] = []
    s = Sweeper(redis_client, keys, lease_seconds=LEASE, probe_after_seconds=60,
                publish_job=lambda job: None, publish_hook=sent.append, hostname="w-test")
    now = time.time()
    redis_client.zadd(keys.hooks, {"due": now - 1, "later": now + 60})

    assert sweep(s, redis_client, keys, now)["hooks"] == 1
    assert sent == ["due"]
    assert redis_client.zscore(keys.hooks, "due") == pytest.approx(now + LEASE)
    assert sweep(s, redis_client, keys, now + 1)["hooks"] == 0
    assert sent == ["due"]


@pytest.mark.parametrize("skew", [600.0, -600.0], ids=["ahead", "behind"])
def test_a_sweeper_whose_clock_is_off_neither_takes_over_a_live_lease_nor_strands_an_expired_one(
        redis_client, keys, producer, monkeypatch, skew):
    # Given one job whose claim is live and one whose claim has just expired
    live, expired = jobs(2)
    producer.write_records([live, expired])
    dedup = DedupStore(redis_client, keys)
    for job, lease in ((live, LEASE), (expired, 0.0)):
        claim = dedup.claim(job_id=job.job_id, identity=f"agr-{job.job_id}",
                            identity_masked="customer_code:C***", params_json=job.params_json(),
                            campaign="", reference="", lease_seconds=lease,
                            probe_after_seconds=60)
        assert claim is not None and claim.status == ClaimStatus.CLAIMED
    # When a sweeper whose host clock is ten minutes off sweeps
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + skew)
    published: list[str] = []
    sweeper(redis_client, keys, published).sweep_once()
    # Then only the expired one comes back
    assert published == [expired.job_id]


def lose_a_message(client: redis.Redis, keys: Keys) -> bytes:
    """What a worker cut from the broker just as it popped a message does to it: the BRPOP
    took it off the queue, and the worker never wrote it to ``unacked`` nor to ``P held``."""
    raw = client.rpop(keys.queue())
    assert raw is not None
    return raw


def test_a_batch_message_popped_and_lost_before_its_first_check_comes_back_at_that_check(
        redis_client, keys, redis_url):
    # Given a batch message whose first look comes a lease after its jobs were recorded
    producer = Producer(producer_app(redis_url, keys.prefix), redis_client, keys,
                        queued_grace_seconds=LEASE)
    published: list[str] = []
    s = sweeper(redis_client, keys, published)
    sweep(s, redis_client, keys, None)  # the first pass records the Redis run id
    batch, waiting = jobs(3), jobs(1)
    producer.enqueue(batch, batch_size=3)
    # When a worker pops it and is cut off before recording it anywhere
    lose_a_message(redis_client, keys)
    producer.enqueue(waiting)
    now = server_now(redis_client)
    sweep(s, redis_client, keys, now)
    assert published == []  # not looked for before its first check
    # Then the first look finds it nowhere and re-publishes its jobs, and only those
    sweep(s, redis_client, keys, now + LEASE + 1)
    assert sorted(published) == sorted(j.job_id for j in batch)


def test_a_message_seen_waiting_then_lost_comes_back_a_lease_after_it_was_seen(
        redis_client, keys, redis_url):
    # Given a message seen waiting in the broker's queue at its first check
    producer = Producer(producer_app(redis_url, keys.prefix), redis_client, keys,
                        queued_grace_seconds=0)
    batch = jobs(2)
    producer.enqueue(batch, batch_size=2)
    published: list[str] = []
    s = sweeper(redis_client, keys, published)
    seen = server_now(redis_client) + 1
    sweep(s, redis_client, keys, seen)
    assert published == []
    # When a worker pops it and is cut off before recording it anywhere
    lose_a_message(redis_client, keys)
    sweep(s, redis_client, keys, seen + LEASE / 2)
    assert published == []  # not due yet
    # Then the next look, a lease after it was seen, re-publishes its jobs
    sweep(s, redis_client, keys, seen + LEASE)
    assert sorted(published) == sorted(j.job_id for j in batch)


def test_unacknowledged_messages_whose_jobs_all_ended_are_dropped_from_the_broker(
        redis_client, keys, producer):
    # Given two batch messages left in the broker's unacked hash by a worker cut off before it
    # acknowledged them, one whose jobs have all ended and one with a job still to do
    done, pending = jobs(2), jobs(2)
    producer.enqueue(done, batch_size=2)
    producer.enqueue(pending, batch_size=2)
    for job in (*done, pending[0]):
        redis_client.hset(keys.job(job.job_id), "state", "unsigned")
    delivered = server_now(redis_client) - LEASE - 1
    for tag in ("tag-done", "tag-pending"):
        raw = json.loads(lose_a_message(redis_client, keys))
        redis_client.hset(keys.unacked, tag, json.dumps([raw, "unsign", "unsign"]))
        redis_client.zadd(keys.unacked_index, {tag: delivered})
    # When the sweeper passes
    published: list[str] = []
    sweep(sweeper(redis_client, keys, published), redis_client, keys, None)
    # Then the first is gone from the broker, the second left for its visibility timeout
    assert redis_client.hkeys(keys.unacked) == [b"tag-pending"]
    assert redis_client.zrange(keys.unacked_index, 0, -1) == [b"tag-pending"]
