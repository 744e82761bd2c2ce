"""The inbox against hostile producers: no entry, however built, stops it; poison entries end;
a reused reference is refused as its own job. Real Redis throughout."""

from __future__ import annotations

import json

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.worker.test_inbox import inbox_for, producer
from tests.worker.test_inbox import job as record
from unsign_worker.producers.client import ReferenceConflictError, UnsignClient
from unsign_worker.producers.producer import CONFLICT_CODE, Producer
from unsign_worker.store.keys import INBOX_GROUP
from unsign_worker.worker import inbox_entry
from unsign_worker.worker.inbox import (
    INVALID_CODE,
    MAX_ENTRY_BYTES,
    POISON_CODE,
    Inbox,
    job_id_for_entry,
)

__all__ = ["producer"]  # the fixture


def add(producer: Producer, fields: dict[str | bytes, str | bytes]) -> str:
    return producer.redis.xadd(producer.keys.inbox, fields).decode()  # type: ignore[arg-type]


def drain(inbox: Inbox, rounds: int = 50) -> None:
    for _ in range(rounds):
        inbox.poll_once(block_ms=1)
        if inbox._r.xlen(inbox._keys.inbox) == 0:
            return
    raise AssertionError("the inbox did not empty")


def valid(producer: Producer, reference: str) -> dict[str | bytes, str | bytes]:
    return {"job": json.dumps({"customer_code": "C00000000001", "reference": reference})}


def queued(producer: Producer, reference: str) -> bool:
    found = producer.redis.get(producer.keys.ref(reference))
    return bool(found) and record(producer, found.decode()).get("state") == "queued"


HOSTILE = {
    "deep_nesting": {"job": "[" * 100_000 + "]" * 100_000},
    "huge_number": {"job": '{"customer_code": ' + "9" * 5000 + "}"},
    "lone_surrogate_key": {"job": '{"\\ud800": "x", "customer_code": "C00000000001"}'},
    "newline_key": {"customer_code": "C00000000001", "x\nFORGED log line": "1"},
    "oversized_key": {"k" * (MAX_ENTRY_BYTES + 1): "1"},
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_hostile_entry_is_rejected_with_its_reason_and_the_entries_behind_it_are_taken(
        producer: Producer, name: str) -> None:
    inbox = inbox_for(producer)
    inbox.ensure_group()
    bad = add(producer, HOSTILE[name])  # type: ignore[arg-type]
    add(producer, valid(producer, "after-" + name))
    drain(inbox)
    rejected = record(producer, job_id_for_entry(producer.keys.inbox, bad))
    assert (rejected["state"], rejected["code"]) == ("rejected", INVALID_CODE)
    assert "\n" not in rejected["reason"] and len(rejected["reason"]) < 3000
    assert queued(producer, "after-" + name)
    assert producer.redis.xpending(producer.keys.inbox, INBOX_GROUP)["pending"] == 0


def test_an_unknown_field_name_is_cut_and_escaped_in_the_reason_and_the_audit(
        producer: Producer) -> None:
    entry = add(producer, {"customer_code": "C00000000001", "x\n" + "y" * 500: "1"})
    drain(inbox_for(producer))
    reason = record(producer, job_id_for_entry(producer.keys.inbox, entry))["reason"]
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
    add(producer, valid(producer, "behind"))
    drain(inbox_for(producer))
    rejected = record(producer, job_id_for_entry(producer.keys.inbox, bad))
    assert rejected["state"] == "rejected" and "MemoryError" in rejected["reason"]
    assert queued(producer, "behind")


def test_an_outage_leaves_the_entry_pending_and_does_not_count_as_a_delivery(
        producer: Producer, monkeypatch: pytest.MonkeyPatch) -> None:
    inbox = inbox_for(producer, max_deliveries=2)
    inbox.ensure_group()
    add(producer, valid(producer, "patient"))

    def down(*args: object, **kwargs: object) -> None:
        raise redis.ConnectionError("Redis down")

    monkeypatch.setattr(producer, "write_records", down)  # the record's write, either path
    for _ in range(5):
        with pytest.raises(redis.ConnectionError):
            inbox.poll_once(block_ms=1)
    monkeypatch.undo()
    drain(inbox)
    assert queued(producer, "patient")


def test_an_entry_its_consumers_died_on_too_often_is_ended_unread(producer: Producer) -> None:
    inbox_for(producer, "dead").ensure_group()
    stream = producer.keys.inbox
    entry = add(producer, valid(producer, "poison"))
    producer.redis.xreadgroup(INBOX_GROUP, "dead-1", {stream: ">"})
    for n in range(2, 4):  # each crash: another consumer claimed it, then died too
        producer.redis.xclaim(stream, INBOX_GROUP, f"dead-{n}", 0, [entry])
    add(producer, valid(producer, "healthy"))
    alive = inbox_for(producer, "alive", stale_after_ms=0, max_deliveries=3)
    drain(alive)
    ended = record(producer, job_id_for_entry(stream, entry))
    assert (ended["state"], ended["code"]) == ("rejected", POISON_CODE)
    assert producer.redis.get(producer.keys.ref("poison")) is None
    assert queued(producer, "healthy")


def test_an_entry_that_kills_its_consumer_every_time_ends_even_under_the_same_name(
        producer: Producer, monkeypatch: pytest.MonkeyPatch) -> None:
    # A worker restarts under the same consumer name (its hostname) after each crash
    entry = add(producer, valid(producer, "killer"))

    def crash(*args: object, **kwargs: object) -> dict[str, str]:
        raise KeyboardInterrupt  # stands for a process killed while taking the entry

    monkeypatch.setattr(inbox_entry, "validated_params", crash)
    crashes = 0
    for _ in range(10):
        try:
            inbox_for(producer, max_deliveries=3).poll_once(block_ms=1)
        except KeyboardInterrupt:
            crashes += 1
        if producer.redis.xlen(producer.keys.inbox) == 0:
            break
    ended = record(producer, job_id_for_entry(producer.keys.inbox, entry))
    assert (ended["state"], ended["code"], crashes) == ("rejected", POISON_CODE, 3)


def test_a_deleted_stream_gets_its_group_back(producer: Producer) -> None:
    inbox = inbox_for(producer)
    inbox.poll_once(block_ms=1)
    producer.redis.delete(producer.keys.inbox)
    add(producer, valid(producer, "after-delete"))  # recreates the stream, without the group
    drain(inbox)
    assert queued(producer, "after-delete")


def test_a_reused_reference_with_other_parameters_is_its_own_rejected_job(
        producer: Producer) -> None:
    add(producer, {"customer_code": "C00000000001", "reference": "order-42"})
    second = add(producer, {"customer_code": "C00000000002", "reference": "order-42"})
    third = add(producer, {"customer_code": "bad!", "reference": "order-42"})
    drain(inbox_for(producer))
    first_job = producer.redis.get(producer.keys.ref("order-42")).decode()
    assert json.loads(record(producer, first_job)["params"]) == {"customer_code": "C00000000001"}
    for entry in (second, third):
        job_id = job_id_for_entry(producer.keys.inbox, entry)
        refused = record(producer, job_id)
        assert (refused["state"], refused["code"]) == ("rejected", CONFLICT_CODE)
        assert first_job in refused["reason"]
        assert producer.redis.sismember(producer.keys.conflicts("order-42"), job_id)
    assert producer.redis.llen(producer.keys.queue()) == 1


def test_the_client_records_a_reference_conflict_its_caller_can_find(
        redis_url: str, key_prefix: str) -> None:
    with UnsignClient(broker_url=redis_url, redis_url=redis_url, key_prefix=key_prefix) as c:
        first = c.enqueue(customer_code="C00000000001", reference="order-7")
        with pytest.raises(ReferenceConflictError) as caught:
            c.enqueue(customer_code="C00000000002", reference="order-7")
        refused = caught.value.rejected_job_id
        assert caught.value.job_id == first and refused and refused != first
        status = c.status(refused)
        assert status is not None and (status.state, status.code) == ("rejected", CONFLICT_CODE)
        assert c.conflicts("order-7") == [refused]


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
    producer.redis.delete(producer.keys.inbox)
    references = []
    for n, fields in enumerate(entries):
        if fields is None:  # a valid entry among the hostile ones
            seq = producer.redis.incr(producer.keys.prefix + "fuzz-seq")
            reference = f"fuzz-{len(references)}-{seq}"
            references.append(reference)
            add(producer, {"customer_code": f"C{n:011d}", "reference": reference})
        else:
            add(producer, fields)  # type: ignore[arg-type]
    drain(inbox_for(producer))
    assert all(queued(producer, r) for r in references)
    assert producer.redis.xpending(producer.keys.inbox, INBOX_GROUP)["pending"] == 0
