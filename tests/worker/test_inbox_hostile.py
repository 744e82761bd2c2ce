"""The inbox against hostile producers: no entry, however built, stops it; poison entries end;
a reused reference is refused as its own job. Real Redis throughout."""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.worker.test_inbox import NAME, bound_job, drain, inbox_for, producer, ref_job, stream
from tests.worker.test_inbox import job as record
from unsign_worker.producers.client import UnsignClient
from unsign_worker.producers.producer import CONFLICT_CODE, Producer
from unsign_worker.store.keys import INBOX_GROUP
from unsign_worker.store.producer_registry import ProducerRegistry
from unsign_worker.worker import inbox as inbox_module
from unsign_worker.worker import inbox_entry
from unsign_worker.worker.inbox import (
    INVALID_CODE,
    MAX_ENTRY_BYTES,
    POISON_CODE,
)

__all__ = ["producer"]  # the fixture


def add(producer: Producer, fields: dict[str | bytes, str | bytes]) -> str:
    return producer.redis.xadd(stream(producer), fields).decode()


def valid(reference: str) -> dict[str | bytes, str | bytes]:
    return {"job": json.dumps({"customer_code": "C00000000001", "reference": reference})}


def queued(producer: Producer, reference: str) -> bool:
    found = ref_job(producer, reference)
    return bool(found) and record(producer, found).get("state") == "queued"


def entry_job(producer: Producer, entry_id: str) -> dict[str, str]:
    """The record of the job bound to an entry ({} if none)."""
    job_id = bound_job(producer, entry_id)
    return record(producer, job_id) if job_id else {}


#: Entries within the producer's size limit (larger ones are refused inside Redis, unread), each
#: breaking the worker's reading of an entry in its own way.
HOSTILE = {
    "deep_nesting": {"job": "[" * 8_000 + "]" * 8_000},
    "huge_number": {"job": '{"customer_code": ' + "9" * 5000 + "}"},
    "lone_surrogate_key": {"job": '{"\\ud800": "x", "customer_code": "C00000000001"}'},
    "newline_key": {"customer_code": "C00000000001", "x\nFORGED log line": "1"},
    "too_many_fields": {f"f{n}": "1" for n in range(40)},
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_hostile_entry_is_rejected_with_its_reason_and_the_entries_behind_it_are_taken(
        producer: Producer, name: str) -> None:
    inbox = inbox_for(producer)
    inbox.ensure_group()
    bad = add(producer, HOSTILE[name])
    add(producer, valid("after-" + name))
    drain(inbox, producer)
    rejected = entry_job(producer, bad)
    assert (rejected["state"], rejected["code"]) == ("rejected", INVALID_CODE)
    assert "\n" not in rejected["reason"] and len(rejected["reason"]) < 3000
    assert queued(producer, "after-" + name)
    assert producer.redis.xpending(stream(producer), INBOX_GROUP)["pending"] == 0


def test_an_entry_over_the_producers_size_limit_is_refused_unread_and_the_others_taken(
        producer: Producer) -> None:
    # the largest entry read by default is the last-resort limit of the worker's own check
    inbox = inbox_for(producer)
    bad = add(producer, {"k" * (MAX_ENTRY_BYTES + 1): "1"})
    add(producer, valid("after-oversized"))
    drain(inbox, producer)
    assert bound_job(producer, bad) == ""  # no job: the worker never read it
    refused = [f for _, f in producer.redis.xrange(producer.keys.producer_refused(NAME))]
    assert [(f[b"entry"].decode(), f[b"reason"]) for f in refused] == [(bad, b"max_size")]
    assert queued(producer, "after-oversized")


def test_an_unknown_field_name_is_cut_and_escaped_in_the_reason_and_the_audit(
        producer: Producer) -> None:
    entry = add(producer, {"customer_code": "C00000000001", "x\n" + "y" * 500: "1"})
    drain(inbox_for(producer), producer)
    reason = entry_job(producer, entry)["reason"]
    assert "'x\\nyyy" in reason and "(502 characters)" in reason and "y" * 100 not in reason
    audit = producer.redis.xrange(producer.keys.audit)[-1][1][b"data"].decode()
    assert "y" * 100 not in audit


def test_any_failure_of_one_entry_rejects_it_with_the_reason(
        producer: Producer, monkeypatch: pytest.MonkeyPatch) -> None:
    real = inbox_entry.validated_params

    def explode(params: dict[str, object], *, charset: str) -> dict[str, str]:
        if params.get("customer_code") == "C00000000666":
            raise MemoryError("pretend")
        return real(params, charset=charset)

    monkeypatch.setattr(inbox_entry, "validated_params", explode)
    bad = add(producer, {"customer_code": "C00000000666"})
    add(producer, valid("behind"))
    drain(inbox_for(producer), producer)
    rejected = entry_job(producer, bad)
    assert rejected["state"] == "rejected" and "MemoryError" in rejected["reason"]
    assert queued(producer, "behind")


def test_an_outage_leaves_the_entry_pending_and_does_not_count_as_a_delivery(
        producer: Producer, monkeypatch: pytest.MonkeyPatch) -> None:
    # one worker polling on through an outage, looking at its pending entries at each poll
    monkeypatch.setattr(inbox_module, "PENDING_CHECK_SECONDS", 0)
    inbox = inbox_for(producer, max_deliveries=2)
    inbox.ensure_group()
    add(producer, valid("patient"))
    real = producer.write_records
    redis_down = True

    def write_records(*args: Any, **kwargs: Any) -> None:
        if redis_down:
            raise redis.ConnectionError("Redis down")
        real(*args, **kwargs)

    monkeypatch.setattr(producer, "write_records", write_records)  # the record's write
    for _ in range(5):
        with pytest.raises(redis.ConnectionError):
            inbox.poll_once(block_ms=1)
    redis_down = False
    drain(inbox, producer)
    assert queued(producer, "patient")


def test_an_entry_its_consumers_died_on_too_often_is_ended_unread(producer: Producer) -> None:
    inbox_for(producer, "dead").ensure_group()
    key = stream(producer)
    entry = add(producer, valid("poison"))
    producer.redis.xreadgroup(INBOX_GROUP, "dead-1", {key: ">"})
    for n in range(2, 4):  # each crash: another consumer claimed it, then died too
        producer.redis.xclaim(key, INBOX_GROUP, f"dead-{n}", 0, [entry])
    add(producer, valid("healthy"))
    alive = inbox_for(producer, "alive", stale_after_ms=0, max_deliveries=3)
    drain(alive, producer)
    ended = entry_job(producer, entry)
    assert (ended["state"], ended["code"]) == ("rejected", POISON_CODE)
    assert ref_job(producer, "poison") == ""
    assert queued(producer, "healthy")
    assert producer.redis.hget(producer.keys.producers_rejected, f"{NAME}:poison_entry") == b"1"


def test_an_entry_that_kills_its_consumer_every_time_ends_even_under_the_same_name(
        producer: Producer, monkeypatch: pytest.MonkeyPatch) -> None:
    # A worker restarts under the same consumer name (its hostname) after each crash
    entry = add(producer, valid("killer"))

    def crash(*args: object, **kwargs: object) -> dict[str, str]:
        raise KeyboardInterrupt  # stands for a process killed while taking the entry

    monkeypatch.setattr(inbox_entry, "validated_params", crash)
    crashes = 0
    for _ in range(10):
        try:
            inbox_for(producer, max_deliveries=3).poll_once(block_ms=1)
        except KeyboardInterrupt:
            crashes += 1
        if producer.redis.xlen(stream(producer)) == 0:
            break
    ended = entry_job(producer, entry)
    assert (ended["state"], ended["code"], crashes) == ("rejected", POISON_CODE, 3)


def test_a_deleted_stream_gets_its_group_back(producer: Producer) -> None:
    inbox = inbox_for(producer)
    inbox.poll_once(block_ms=1)
    producer.redis.delete(stream(producer))
    add(producer, valid("after-delete"))  # recreates the stream, without the group
    drain(inbox, producer)
    assert queued(producer, "after-delete")


def test_a_reused_reference_with_other_parameters_is_its_own_rejected_job(
        producer: Producer) -> None:
    add(producer, {"customer_code": "C00000000001", "reference": "order-42"})
    second = add(producer, {"customer_code": "C00000000002", "reference": "order-42"})
    third = add(producer, {"customer_code": "bad!", "reference": "order-42"})
    drain(inbox_for(producer), producer)
    first_job = ref_job(producer, "order-42")
    assert first_job
    assert json.loads(record(producer, first_job)["params"]) == {"customer_code": "C00000000001"}
    for entry in (second, third):
        job_id = bound_job(producer, entry)
        assert job_id and job_id != first_job
        refused = record(producer, job_id)
        assert (refused["state"], refused["code"]) == ("rejected", CONFLICT_CODE)
        assert first_job in refused["reason"]
        assert producer.redis.sismember(producer.keys.producer_conflicts(NAME, "order-42"),
                                        job_id)
    assert producer.redis.llen(producer.keys.queue()) == 1


def test_a_reference_is_the_producers_own_another_producers_same_reference_is_another_job(
        producer: Producer) -> None:
    ProducerRegistry(producer.redis, producer.keys).add("billing")
    ours = add(producer, {"customer_code": "C00000000001", "reference": "order-9"})
    theirs = producer.redis.xadd(producer.keys.inbox("billing"),
                                 {"customer_code": "C00000000002",
                                  "reference": "order-9"}).decode()
    inbox = inbox_for(producer)
    drain(inbox, producer)
    drain(inbox, producer, "billing")
    mine, other = bound_job(producer, ours), bound_job(producer, theirs, "billing")
    assert mine and other and mine != other
    assert (ref_job(producer, "order-9"), ref_job(producer, "order-9", "billing")) == (
        mine, other)
    assert record(producer, mine)["state"] == record(producer, other)["state"] == "queued"
    assert producer.redis.get(producer.keys.ref("order-9")) is None  # not the operator's


def test_the_client_finds_a_reference_conflict_once_a_worker_took_its_requests(
        producer: Producer, redis_url: str, key_prefix: str) -> None:
    with UnsignClient(redis_url, producer=NAME, key_prefix=key_prefix) as client:
        first = client.enqueue(customer_code="C00000000001", reference="order-7")
        second = client.enqueue(customer_code="C00000000002", reference="order-7")
        drain(inbox_for(producer), producer)
        bound = client.find("order-7")
        taken = client.status(first)
        assert bound and taken is not None and taken.job_id == bound
        refused = client.status(second)
        assert refused is not None and refused.job_id != bound
        assert (refused.state, refused.code) == ("rejected", CONFLICT_CODE)
        assert client.conflicts("order-7") == [refused.job_id]


_text = st.text(max_size=40)
_hostile_entry = st.one_of(
    st.dictionaries(st.binary(min_size=1, max_size=30), st.binary(max_size=60), min_size=1,
                    max_size=5),
    st.builds(lambda depth: {b"job": b"[" * depth + b"]" * depth},
              st.integers(1000, 50_000)),
    st.builds(lambda digits: {b"job": b'{"customer_code": ' + b"7" * digits + b"}"},
              st.integers(4301, 9000)),
    st.builds(lambda key, value: {b"job": json.dumps({key: value}).encode()}, _text, _text),
    st.builds(lambda cp: {b"job": f'{{"\\u{cp:04x}": "1", "reference": "\\u{cp:04x}"}}'
                          .encode()}, st.integers(0xD800, 0xDFFF)),
    st.builds(lambda size: {b"customer_code": b"C" * size}, st.integers(0, 40_000)),
)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(entries=st.lists(st.one_of(st.none(), _hostile_entry), min_size=1, max_size=12))
def test_a_fuzzed_stream_of_hostile_entries_never_stops_the_inbox(
        producer: Producer, entries: list[dict[bytes, bytes] | None]) -> None:
    producer.redis.delete(stream(producer))
    references: list[str] = []
    for n, fields in enumerate(entries):
        if fields is None:  # a valid entry among the hostile ones
            seq = producer.redis.incr(producer.keys.prefix + "fuzz-seq")
            reference = f"fuzz-{len(references)}-{seq}"
            references.append(reference)
            add(producer, {"customer_code": f"C{n:011d}", "reference": reference})
        else:
            add(producer, fields)
    drain(inbox_for(producer), producer)
    assert all(queued(producer, r) for r in references)
    assert producer.redis.xpending(stream(producer), INBOX_GROUP)["pending"] == 0
