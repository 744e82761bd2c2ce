"""A producer's view of its job (``P producer:<name>:job:<id>``) follows the job's record
through every script that writes the record: the same state, code, reason, attempts, reference
and timestamps, never the parameters, and the record's time to live. A job without a producer
has no view; a message naming another producer than the record is refused. Real Redis."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis

from unsign_worker.store.claims import Claim, ClaimStatus, DedupStore
from unsign_worker.store.deadletter import DeadLetters
from unsign_worker.store.job import Job
from unsign_worker.store.job_records import REJECTED_RETENTION_SECONDS, JobRecords
from unsign_worker.store.keys import JOB_RETENTION_SECONDS, Keys
from unsign_worker.store.requests import FinishRequest, SettleRequest
from unsign_worker.store.states import JobState

NAME = "crm"
#: A terminal record's retention in these tests, seconds (unlike any default).
RETENTION = 12_345
CODE = "C00000000042"
PARAMS = {"customer_code": CODE}
PARAMS_JSON = json.dumps(PARAMS)
#: What a view holds, and nothing else.
VIEW_FIELDS = {"job_id", "state", "code", "reason", "attempts", "reference", "created_at",
               "updated_at", "finished_at"}


@dataclass
class Store:
    r: redis.Redis
    keys: Keys
    dedup: DedupStore
    records: JobRecords
    dlq: DeadLetters

    def record(self, job_id: str) -> dict[str, str]:
        return _decode(self.r.hgetall(self.keys.job(job_id)))

    def view(self, job_id: str, name: str = NAME) -> dict[str, str]:
        return _decode(self.r.hgetall(self.keys.producer_job(name, job_id)))

    def producer_keys(self) -> list[bytes]:
        return list(self.r.scan_iter(match=self.keys.prefix + "producer:*", count=1000))


def _decode(raw: dict[bytes, bytes]) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in raw.items()}


@pytest.fixture
def store(redis_client: redis.Redis, key_prefix: str) -> Iterator[Store]:
    keys = Keys(key_prefix)
    yield Store(redis_client, keys, DedupStore(redis_client, keys), JobRecords(redis_client, keys),
                DeadLetters(redis_client, keys))


def new_id(n: int) -> str:
    return f"{n:x}" * 32 if n < 16 else f"{n:032x}"


def assert_mirrors(store: Store, job_id: str, state: str, name: str = NAME) -> dict[str, str]:
    """The view of ``job_id`` holds exactly what a producer may read of its record, with the
    record's time to live; returns it."""
    seen, record = store.view(job_id, name), store.record(job_id)
    assert record["state"] == seen["state"] == state
    assert set(seen) == VIEW_FIELDS
    for field in VIEW_FIELDS:
        assert seen[field] == record.get(field, "0" if field == "attempts" else ""), field
    assert CODE not in json.dumps(seen) and "C***" not in json.dumps(seen)
    pipe = store.r.pipeline(transaction=True)
    pipe.pttl(store.keys.job(job_id))
    pipe.pttl(store.keys.producer_job(name, job_id))
    record_ttl, view_ttl = pipe.execute()
    if record_ttl == -1:
        assert view_ttl == -1
    else:
        assert record_ttl > 0 and abs(record_ttl - view_ttl) <= 1_000
    return seen


def queue(store: Store, job_id: str, *, producer: str = NAME, campaign: str = "",
          reference: str = "order-1") -> None:
    job = Job(job_id=job_id, params=PARAMS, reference=reference, producer=producer,
              campaign=campaign)
    assert store.records.write_queued([job]) == set()


def claim(store: Store, job_id: str, *, producer: str = NAME, campaign: str = "",
          reference: str = "order-1", params_json: str = PARAMS_JSON) -> Claim:
    found = store.dedup.claim(job_id=job_id, identity=f"agr-{job_id}",
                              identity_masked="customer_code:C***", params_json=params_json,
                              campaign=campaign, reference=reference,
                              lease_seconds=30, probe_after_seconds=3600, producer=producer)
    assert found is not None
    return found


def settle(store: Store, job_id: str, token: str, state: JobState, *, producer: str = NAME,
           **options: Any) -> str | None:
    now = time.time()
    request = SettleRequest(
        job_id=job_id, identity=f"agr-{job_id}", campaign="", token=token, now=now,
        state=state, code=options.pop("code", ""), reason=options.pop("reason", str(state)),
        attempts=options.pop("attempts", 1), reached=True, lease_seconds=30,
        audit={"job_id": job_id}, retention_seconds=RETENTION, audit_maxlen=100,
        events_maxlen=100, hook_delay=0, producer=producer, **options)
    return store.dedup.settle(request, minute=int(now // 60))


def finish(store: Store, job_id: str, *, producer: str = NAME,
           params_json: str = PARAMS_JSON) -> str | None:
    now = time.time()
    return store.dedup.finish_unclaimed(FinishRequest(
        job_id=job_id, identity="", identity_masked="", campaign="", reference="order-9",
        params_json=params_json, now=now, state=JobState.REJECTED, code="INVALID_JOB",
        reason="customer_code [format]", audit={"job_id": job_id}, retention_seconds=RETENTION,
        audit_maxlen=100, producer=producer), minute=int(now // 60))


def dead_letter(store: Store, job_id: str) -> None:
    queue(store, job_id)
    token = claim(store, job_id).token
    assert settle(store, job_id, token, JobState.DEAD_LETTERED, code="SYSTEM_ERROR",
                  reason="gave up", dlq={"job_id": job_id, "code": "SYSTEM_ERROR",
                                         "kind": "retry_exhausted", "campaign": ""}) == "ok"


# --- every script keeps the view -----------------------------------------------------------------

def test_create_queued_makes_the_view_of_a_producers_new_job(store: Store) -> None:
    queue(store, new_id(1))
    seen = assert_mirrors(store, new_id(1), "queued")
    assert (seen["reference"], seen["attempts"]) == ("order-1", "0")


def test_a_record_written_again_leaves_record_and_view_alone(store: Store) -> None:
    queue(store, new_id(1))
    before = store.view(new_id(1))
    job = Job(job_id=new_id(1), params={"customer_code": "C00000000666"}, reference="other",
              producer=NAME)
    assert store.records.write_queued([job]) == {0}
    assert store.view(new_id(1)) == before
    assert json.loads(store.record(new_id(1))["params"]) == PARAMS


def test_a_claim_shows_the_job_in_flight(store: Store) -> None:
    queue(store, new_id(1))
    assert claim(store, new_id(1)).status == ClaimStatus.CLAIMED
    assert_mirrors(store, new_id(1), "in_flight")


def test_a_claim_of_a_job_without_a_record_creates_both(store: Store) -> None:
    assert claim(store, new_id(2)).status == ClaimStatus.CLAIMED
    assert store.record(new_id(2))["producer"] == NAME
    assert_mirrors(store, new_id(2), "in_flight")


def test_a_claim_while_the_breaker_is_open_shows_the_job_parked(store: Store) -> None:
    queue(store, new_id(1))
    store.r.hset(store.keys.breaker, mapping={"state": "open", "opened_at": repr(time.time()),
                                              "code": "SYSTEM_ERROR"})
    assert claim(store, new_id(1)).status == ClaimStatus.PARKED
    assert assert_mirrors(store, new_id(1), "parked")["reason"] == "circuit breaker open"


def test_a_claim_while_the_jobs_campaign_is_paused_shows_it_parked(store: Store) -> None:
    queue(store, new_id(1), campaign="c1")
    store.r.hset(store.keys.campaign("c1"), "state", "paused")
    assert claim(store, new_id(1), campaign="c1").status == ClaimStatus.PAUSED
    assert assert_mirrors(store, new_id(1), "parked")["reason"] == "campaign paused"


def test_a_settled_retry_shows_the_attempts_code_and_reason(store: Store) -> None:
    queue(store, new_id(1))
    token = claim(store, new_id(1)).token
    assert settle(store, new_id(1), token, JobState.RETRYING, code="SYSTEM_BUSY",
                  reason="busy, retried", attempts=2, retries=1) == "ok"
    seen = assert_mirrors(store, new_id(1), "retrying")
    assert (seen["code"], seen["reason"], seen["attempts"]) == ("SYSTEM_BUSY",
                                                                "busy, retried", "2")


def test_a_terminal_outcome_gets_the_records_retention(store: Store) -> None:
    queue(store, new_id(1))
    token = claim(store, new_id(1)).token
    assert settle(store, new_id(1), token, JobState.UNSIGNED, reason="unsigned") == "ok"
    seen = assert_mirrors(store, new_id(1), "unsigned")
    assert seen["finished_at"]
    assert RETENTION - 60 < store.r.ttl(store.keys.producer_job(NAME, new_id(1))) <= RETENTION


def test_a_dead_lettered_job_is_kept_and_so_is_its_view(store: Store) -> None:
    dead_letter(store, new_id(1))
    assert assert_mirrors(store, new_id(1), "dead_lettered")["code"] == "SYSTEM_ERROR"
    assert store.r.ttl(store.keys.producer_job(NAME, new_id(1))) == -1


def test_a_requeue_from_the_dead_letter_queue_shows_the_job_queued_again(store: Store) -> None:
    dead_letter(store, new_id(1))
    store.dlq.requeue(new_id(1), republish=lambda job_id, at: False, by="ops",
                      lease_seconds=30)
    seen = assert_mirrors(store, new_id(1), "queued")
    assert (seen["code"], seen["finished_at"]) == ("", "")
    assert seen["reason"] == "requeued from the dead-letter queue"


def test_a_resolved_dead_letter_gives_the_view_the_records_retention(store: Store) -> None:
    dead_letter(store, new_id(1))
    store.dlq.resolve(new_id(1), note="handled at the counter", by="ops")
    assert_mirrors(store, new_id(1), "dead_lettered")
    assert (JOB_RETENTION_SECONDS - 60
            < store.r.ttl(store.keys.producer_job(NAME, new_id(1))) <= JOB_RETENTION_SECONDS)


def test_a_job_ended_without_a_claim_shows_its_end(store: Store) -> None:
    assert finish(store, new_id(3)) == "ok"  # no record yet
    seen = assert_mirrors(store, new_id(3), "rejected")
    assert (seen["code"], seen["reason"]) == ("INVALID_JOB", "customer_code [format]")
    queue(store, new_id(4))  # a queued record
    assert finish(store, new_id(4)) == "ok"
    assert_mirrors(store, new_id(4), "rejected")


def test_a_job_rejected_before_it_was_sent_has_its_view(store: Store) -> None:
    assert store.records.record_rejected(new_id(5), reference="order-5",
                                         code="REFERENCE_CONFLICT", reason="bound to another",
                                         source="inbox", producer=NAME)
    seen = assert_mirrors(store, new_id(5), "rejected")
    assert (seen["code"], seen["reference"]) == ("REFERENCE_CONFLICT", "order-5")
    ttl = store.r.ttl(store.keys.producer_job(NAME, new_id(5)))
    assert REJECTED_RETENTION_SECONDS - 60 < ttl <= REJECTED_RETENTION_SECONDS
    assert store.r.hget(store.keys.producers_rejected, f"{NAME}:reference_conflict") == b"1"
    assert store.r.sismember(store.keys.producer_conflicts(NAME, "order-5"), new_id(5))
    # recorded again (read again after a crash): nothing changes
    before = store.view(new_id(5))
    assert not store.records.record_rejected(new_id(5), reference="order-5", code="INVALID_JOB",
                                             reason="other", source="inbox", producer=NAME)
    assert store.view(new_id(5)) == before


# --- no producer, no view; another producer, refused ---------------------------------------------

def test_a_job_without_a_producer_has_no_view_through_its_whole_life(store: Store) -> None:
    queue(store, new_id(1), producer="")
    token = claim(store, new_id(1), producer="").token
    assert settle(store, new_id(1), token, JobState.UNSIGNED, producer="") == "ok"
    assert finish(store, new_id(2), producer="") == "ok"
    assert store.records.record_rejected(new_id(3), reference="r3", code="INVALID_JOB",
                                         reason="bad", source="cli")
    dead_letter_without = new_id(6)
    queue(store, dead_letter_without, producer="")
    token = claim(store, dead_letter_without, producer="").token
    assert settle(store, dead_letter_without, token, JobState.DEAD_LETTERED, producer="",
                  dlq={"job_id": dead_letter_without, "code": "X", "campaign": ""}) == "ok"
    store.dlq.requeue(dead_letter_without, republish=lambda job_id, at: False, by="ops",
                      lease_seconds=30)
    assert store.record(new_id(1))["state"] == "unsigned"
    assert "producer" not in store.record(new_id(3))
    assert store.producer_keys() == []


def test_a_claim_naming_another_producer_than_the_record_is_refused(store: Store) -> None:
    queue(store, new_id(1))
    before_record, before_view = store.record(new_id(1)), store.view(new_id(1))
    for other in ("billing", ""):
        assert claim(store, new_id(1), producer=other).status == ClaimStatus.MISMATCH
    assert store.record(new_id(1)) == before_record
    assert store.view(new_id(1)) == before_view
    assert store.view(new_id(1), "billing") == {}


def test_a_claim_naming_a_producer_for_a_job_of_the_operator_is_refused(store: Store) -> None:
    queue(store, new_id(1), producer="")
    assert claim(store, new_id(1), producer=NAME).status == ClaimStatus.MISMATCH
    assert store.record(new_id(1))["state"] == "queued"
    assert store.producer_keys() == []


def test_an_unclaimed_end_naming_another_producer_than_the_record_is_refused(
        store: Store) -> None:
    queue(store, new_id(1))
    before_record, before_view = store.record(new_id(1)), store.view(new_id(1))
    assert finish(store, new_id(1), producer="billing") == "mismatch"
    assert finish(store, new_id(1), producer="") == "mismatch"
    assert store.record(new_id(1)) == before_record
    assert store.view(new_id(1)) == before_view
    assert store.view(new_id(1), "billing") == {}
