"""Each producer's stream, read inside Redis: a producer with a bug or a grudge (huge entries,
a flood, a blocked or trimmed stream, reused entry ids) hurts only itself; a crash while an
entry is taken never makes a second job. Real Redis throughout, no worker process."""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Callable, Mapping
from typing import Any

import pytest
import redis

from tests.worker.test_inbox import (
    NAME,
    add,
    bound_job,
    drain,
    handed,
    inbox_for,
    job,
    producer,
    ref_job,
    stream,
    view,
)
from unsign_worker.producers.client import UnsignClient
from unsign_worker.producers.producer import Producer
from unsign_worker.store.claims import ClaimStatus, DedupStore
from unsign_worker.store.keys import INBOX_GROUP
from unsign_worker.store.producer_registry import ProducerRegistry
from unsign_worker.worker.entry_taker import EntryTaker
from unsign_worker.worker.inbox import INVALID_CODE, Inbox

__all__ = ["producer"]  # the fixture

#: The other producer of these tests.
OTHER = "billing"
#: A huge entry, bytes.
HUGE = 8 * 1024 * 1024


def register(producer: Producer, name: str, **limits: int) -> None:
    ProducerRegistry(producer.redis, producer.keys).add(name, **limits)


def refused(producer: Producer, name: str = NAME) -> list[dict[str, str]]:
    """The entries of producer ``name`` refused unread, oldest first."""
    return [{k.decode(): v.decode() for k, v in fields.items()}
            for _, fields in producer.redis.xrange(producer.keys.producer_refused(name))]


def rejected_count(producer: Producer, name: str, reason: str) -> int:
    return int(producer.redis.hget(producer.keys.producers_rejected, f"{name}:{reason}") or 0)


def keys_like(producer: Producer, pattern: str) -> list[bytes]:
    return list(producer.redis.scan_iter(match=producer.keys.prefix + pattern, count=1000))


def valid(n: int, reference: str = "") -> dict[str, str]:
    fields = {"customer_code": f"C{n:011d}"}
    if reference:
        fields["reference"] = reference
    return fields


class TakerSpy:
    """Records every entry the worker's code is handed (through :class:`EntryTaker`): which
    producer, which entry, how many bytes."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.seen: list[tuple[str, str, int]] = []
        real_fresh, real_handle = EntryTaker.take_fresh, EntryTaker.handle
        spy = self

        def take_fresh(taker: EntryTaker, name: str,
                       entries: list[tuple[str, Mapping[bytes, bytes]]]) -> list[Any]:
            for entry_id, fields in entries:
                spy.seen.append((name, entry_id, size_of(fields)))
            return real_fresh(taker, name, entries)

        def handle(taker: EntryTaker, name: str, entry_id: str,
                   fields: Mapping[bytes, bytes] | None, *, deliveries: int) -> Any:
            spy.seen.append((name, entry_id, size_of(fields or {})))
            return real_handle(taker, name, entry_id, fields, deliveries=deliveries)

        monkeypatch.setattr(EntryTaker, "take_fresh", take_fresh)
        monkeypatch.setattr(EntryTaker, "handle", handle)

    def entry_ids(self) -> set[str]:
        return {entry_id for _, entry_id, _ in self.seen}


def size_of(fields: Mapping[bytes, bytes]) -> int:
    return sum(len(k) + len(v) for k, v in fields.items())


def python_memory_growth(action: Callable[[], int]) -> tuple[int, int]:
    """``(what action returned, the peak of Python memory allocated while it ran, bytes)``."""
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        result = action()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak - before


# --- entries over the size limit ---------------------------------------------------------------

def test_a_huge_entry_is_refused_inside_redis_and_never_reaches_the_worker(
        producer: Producer, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a running inbox (its first hand-over done: what a first one loads is not the
    # entry's), and a producer that adds an 8 MB entry between two valid ones
    inbox = inbox_for(producer)
    add(producer, valid(0, "first"))
    drain(inbox, producer)
    before = add(producer, valid(1, "before"))
    huge = add(producer, {"job": "x" * HUGE})
    after = add(producer, valid(2, "after"))
    spy = TakerSpy(monkeypatch)

    # When the inbox polls once
    done, grew = python_memory_growth(lambda: inbox.poll_once(block_ms=10))

    # Then the worker's code was handed the two valid entries only, and its process never
    # held the huge one: what it allocated meanwhile is a small fraction of the entry's size
    assert grew < HUGE // 16, f"the poll allocated {grew} bytes"
    assert done == 3
    assert spy.entry_ids() == {before, after}
    assert all(size < 1_000 for _, _, size in spy.seen)
    # And the entry is gone from the stream, refused with the reason, counted, no job made
    assert producer.redis.xrange(stream(producer), huge, huge) == []
    assert producer.redis.xpending(stream(producer), INBOX_GROUP)["pending"] == 0
    assert [(r["entry"], r["reason"]) for r in refused(producer)] == [(huge, "max_size")]
    assert str(HUGE + 3) in refused(producer)[0]["detail"]
    assert rejected_count(producer, NAME, "max_size") == 1
    assert bound_job(producer, huge) == ""
    assert job(producer, ref_job(producer, "before"))["state"] == "queued"
    assert job(producer, ref_job(producer, "after"))["state"] == "queued"


def test_the_memory_measure_sees_an_entry_the_worker_does_receive(
        producer: Producer, monkeypatch: pytest.MonkeyPatch) -> None:
    # The witness of the test above: the same measure, around an entry just within its
    # producer's limit, shows at least the entry's size (the entry, not JSON, is then rejected)
    inbox = inbox_for(producer)
    inbox.refresh()
    size = 16_000
    entry = add(producer, {"job": "x" * (size - 3)})
    spy = TakerSpy(monkeypatch)

    done, grew = python_memory_growth(lambda: inbox.poll_once(block_ms=10))

    assert done == 1 and spy.seen == [(NAME, entry, size)]
    assert grew >= size
    rejected = job(producer, bound_job(producer, entry))
    assert (rejected["state"], rejected["code"]) == ("rejected", INVALID_CODE)
    assert "[json]" in rejected["reason"]


def test_the_size_limit_is_the_producers_own(producer: Producer) -> None:
    # Given a producer limited to 300 bytes, and another with the default limit
    register(producer, NAME, max_entry_bytes=300)
    register(producer, OTHER)
    small = add(producer, valid(1, "small"))
    large = add(producer, {**valid(2, "large"), "pad": "p" * 400})
    theirs = add(producer, {**valid(3, "theirs"), "pad": "p" * 400}, name=OTHER)
    # When the inbox takes them
    drain(inbox_for(producer), producer)
    drain(inbox_for(producer), producer, OTHER)
    # Then only the first producer's large entry was refused unread
    assert [(r["entry"], r["reason"]) for r in refused(producer)] == [(large, "max_size")]
    assert refused(producer, OTHER) == []
    assert bound_job(producer, small) and bound_job(producer, theirs, OTHER)
    assert bound_job(producer, large) == ""


# --- entries over the cap of pending entries ---------------------------------------------------

def test_entries_read_while_the_stream_holds_more_than_its_cap_are_refused_the_others_go(
        producer: Producer, redis_url: str, key_prefix: str) -> None:
    # Given a producer allowed 3 pending entries whose stream holds 5 (written past its client)
    register(producer, NAME, max_pending=3)
    entries = [add(producer, valid(n, f"order-{n}")) for n in range(5)]
    # When the inbox polls once
    assert inbox_for(producer).poll_once(block_ms=10) == 5
    # Then two were refused unread, with the reason, and the three others became jobs
    refusals = refused(producer)
    assert [r["reason"] for r in refusals] == ["max_pending", "max_pending"]
    refused_ids = {r["entry"] for r in refusals}
    taken = {e for e in entries if bound_job(producer, e)}
    assert refused_ids | taken == set(entries) and len(taken) == 3
    assert all(bound_job(producer, e) == "" for e in refused_ids)
    assert rejected_count(producer, NAME, "max_pending") == 2
    assert producer.redis.xlen(stream(producer)) == 0
    assert len(handed(producer)) == 3
    # And the producer's client tells it so, for a refused request
    with UnsignClient(redis_url, producer=NAME, key_prefix=key_prefix) as client:
        status = client.status(sorted(refused_ids)[0])
        assert status is not None and (status.state, status.code) == ("rejected",
                                                                      "BACKLOG_FULL")


@pytest.mark.parametrize("flood", ["count", "size"])
def test_one_producers_flood_does_not_stop_another_producers_entries_in_the_same_poll(
        producer: Producer, flood: str) -> None:
    # Given a producer flooding its stream past its cap (or with entries past its size limit),
    # and another producer's few entries
    register(producer, NAME, max_pending=10, max_entry_bytes=1_024)
    register(producer, OTHER)
    pipe = producer.redis.pipeline(transaction=False)
    for n in range(300):
        pipe.xadd(stream(producer), {**valid(n), "pad": "p" * (2_000 if flood == "size" else 1)})
    pipe.execute()
    theirs = [add(producer, valid(n, f"theirs-{n}"), name=OTHER) for n in range(3)]
    # When the inbox polls once
    inbox_for(producer).poll_once(block_ms=10)
    # Then the other producer's entries were all taken by that poll
    for n, entry in enumerate(theirs):
        job_id = bound_job(producer, entry, OTHER)
        assert job_id and ref_job(producer, f"theirs-{n}", OTHER) == job_id
        assert job(producer, job_id)["state"] == "queued"
    assert producer.redis.xlen(stream(producer, OTHER)) == 0
    reason = "max_pending" if flood == "count" else "max_size"
    assert rejected_count(producer, NAME, reason) > 0
    assert rejected_count(producer, OTHER, "max_pending") == 0
    assert rejected_count(producer, OTHER, "max_size") == 0


# --- a crash while an entry is taken -----------------------------------------------------------

class Crash(BaseException):
    """Stands for the process killed at that point."""


def crash_after_binding(producer: Producer, monkeypatch: pytest.MonkeyPatch
                        ) -> dict[str, Any]:
    real = producer.bind_entries
    armed = [True]

    def bind_entries(*args: Any, **kwargs: Any) -> Any:
        bound = real(*args, **kwargs)
        if armed.pop() if armed else False:
            raise Crash
        return bound

    monkeypatch.setattr(producer, "bind_entries", bind_entries)
    return {}


def crash_before_the_record(producer: Producer, monkeypatch: pytest.MonkeyPatch
                            ) -> dict[str, Any]:
    # the references of the read's new jobs are bound by then, their records not yet written
    real = producer.write_records
    armed = [True]

    def write_records(*args: Any, **kwargs: Any) -> Any:
        if armed.pop() if armed else False:
            raise Crash
        return real(*args, **kwargs)

    monkeypatch.setattr(producer, "write_records", write_records)
    return {}


def crash_after_the_record(producer: Producer, monkeypatch: pytest.MonkeyPatch
                           ) -> dict[str, Any]:
    real = producer.write_records
    armed = [True]

    def write_records(*args: Any, **kwargs: Any) -> Any:
        written = real(*args, **kwargs)
        if armed.pop() if armed else False:
            raise Crash
        return written

    monkeypatch.setattr(producer, "write_records", write_records)
    return {}


def crash_in_the_hand_over(producer: Producer, monkeypatch: pytest.MonkeyPatch
                           ) -> dict[str, Any]:
    def hand_over(jobs: object) -> None:
        raise Crash

    return {"hand_over": hand_over}


def crash_after_the_hand_over(producer: Producer, monkeypatch: pytest.MonkeyPatch
                              ) -> dict[str, Any]:
    def hand_over(jobs: Any) -> None:
        producer.send_jobs(jobs)
        raise Crash  # the message went, the entries were not acknowledged

    return {"hand_over": hand_over}


CRASHES = {f.__name__: f for f in (crash_after_binding, crash_before_the_record,
                                   crash_after_the_record, crash_in_the_hand_over,
                                   crash_after_the_hand_over)}


@pytest.mark.parametrize("restart", ["same_consumer", "other_consumer"])
@pytest.mark.parametrize("crash", sorted(CRASHES))
def test_a_crash_while_an_entry_is_taken_never_makes_a_second_job(
        producer: Producer, monkeypatch: pytest.MonkeyPatch, crash: str, restart: str) -> None:
    # Given entries with and without a reference, and a consumer that dies while taking them
    with_ref = add(producer, valid(1, "order-1"))
    without = add(producer, valid(2))
    options = CRASHES[crash](producer, monkeypatch)
    with pytest.raises(Crash):
        inbox_for(producer, "w1", **options).poll_once(block_ms=10)
    assert producer.redis.xpending(stream(producer), INBOX_GROUP)["pending"] == 2

    # When a fresh inbox polls: the same consumer restarted, or another once the first one's
    # entries went stale
    if restart == "same_consumer":
        inbox = inbox_for(producer, "w1")
    else:
        inbox = inbox_for(producer, "w2", stale_after_ms=0)
    drain(inbox, producer)

    # Then each entry has exactly one job, bound once, recorded once, and handed over
    ids = [bound_job(producer, with_ref), bound_job(producer, without)]
    assert all(ids) and len(set(ids)) == 2
    assert ref_job(producer, "order-1") == ids[0]
    assert sorted(keys_like(producer, "job:*")) == sorted(
        producer.keys.job(j).encode() for j in ids)
    assert len(keys_like(producer, f"producer:{NAME}:entry:*")) == 2
    for job_id, params in zip(ids, (valid(1), valid(2)), strict=True):
        record = job(producer, job_id)
        assert (record["state"], json.loads(record["params"])) == ("queued", params)
        assert view(producer, job_id)["state"] == "queued"
    assert set(handed(producer)) == set(ids)
    if crash != "crash_after_the_hand_over":
        assert sorted(handed(producer)) == sorted(ids)
    assert producer.redis.xlen(stream(producer)) == 0
    assert producer.redis.xpending(stream(producer), INBOX_GROUP)["pending"] == 0


# --- reused entry ids, trimmed and blocked streams ---------------------------------------------

@pytest.mark.parametrize("reuse", [
    {"customer_code": "C00000000666", "reference": "attacker-1"},
    {"customer_code": "C00000000666"},
    {"customer_code": "bad!", "reference": "attacker-2"},
    {"customer_code": "C00000000001", "reference": "order-1"},
], ids=["other_params_new_reference", "other_params", "invalid", "same_job"])
def test_an_entry_id_reused_after_the_stream_was_recreated_never_touches_its_jobs_record(
        producer: Producer, reuse: dict[str, str]) -> None:
    # Given a job an entry made, which has since ended unsigned
    inbox = inbox_for(producer)
    entry = add(producer, valid(1, "order-1"))
    drain(inbox, producer)
    victim = bound_job(producer, entry)
    assert victim
    producer.redis.hset(producer.keys.job(victim), mapping={"state": "unsigned",
                                                              "finished_at": "1.0"})
    record_before, view_before = job(producer, victim), view(producer, victim)
    # When the stream is deleted (an operator unblocking it), and the producer re-adds the
    # entry id with other fields
    producer.redis.delete(stream(producer))
    add(producer, reuse, id=entry)
    drain(inbox, producer)
    # Then the entry still names the same job, whose record (and view) did not change, and no
    # other record was made
    assert bound_job(producer, entry) == victim
    assert job(producer, victim) == record_before
    assert view(producer, victim) == view_before
    assert keys_like(producer, "job:*") == [producer.keys.job(victim).encode()]
    # And whatever was handed over for that job is not acted on: its record has ended
    for job_id in handed(producer):
        assert job_id == victim
    claim = DedupStore(producer.redis, producer.keys).claim(
        job_id=victim, identity="agr", identity_masked="customer_code:C***",
        params_json=json.dumps({"customer_code": reuse["customer_code"]}), campaign="",
        reference=reuse.get("reference", ""), lease_seconds=30,
        probe_after_seconds=60, producer=NAME)
    assert claim is not None and claim.status == ClaimStatus.TERMINAL



@pytest.mark.parametrize("reuse", [
    {"customer_code": "C00000000666", "reference": "attacker-1"},
    {"customer_code": "C00000000666"},
], ids=["other_params_new_reference", "other_params"])
def test_a_reused_entry_id_naming_another_request_is_refused_and_binds_no_reference(
        producer: Producer, reuse: dict[str, str]) -> None:
    inbox = inbox_for(producer)
    entry = add(producer, valid(1, "order-1"))
    drain(inbox, producer)
    victim = bound_job(producer, entry)
    handed_before = list(handed(producer))
    producer.redis.delete(stream(producer))
    add(producer, reuse, id=entry)
    drain(inbox, producer)
    # nothing handed over for it, its reference left free, the refusal listed and counted
    assert list(handed(producer)) == handed_before
    assert producer.redis.get(f"{producer.keys.prefix}producer:{NAME}:ref:attacker-1") is None
    refused = producer.redis.xrange(f"{producer.keys.prefix}producer:{NAME}:refused")
    assert [(f[b"entry"].decode(), f[b"reason"]) for _, f in refused] == [
        (entry, b"entry_reused")]
    assert victim.encode() in refused[0][1][b"detail"]
    assert producer.redis.hget(f"{producer.keys.prefix}producers:rejected",
                               f"{NAME}:entry_reused") == b"1"

def pending_on_a_dead_consumer(producer: Producer, name: str) -> None:
    Inbox(producer.redis, producer.keys, producer, consumer="dead").refresh()
    producer.redis.xreadgroup(INBOX_GROUP, "dead", {stream(producer, name): ">"})


def attack_maxlen_0(producer: Producer) -> None:
    add(producer, valid(99), maxlen=0, approximate=False)


def attack_exhausted_id(producer: Producer) -> None:
    add(producer, valid(99), id="18446744073709551615-18446744073709551615")
    with pytest.raises(redis.ResponseError):  # the stream takes no new entry any more
        add(producer, valid(98))


@pytest.mark.parametrize("attack", [attack_maxlen_0, attack_exhausted_id],
                         ids=["maxlen_0", "exhausted_id"])
def test_a_producer_trimming_or_blocking_its_stream_only_affects_its_own(
        producer: Producer, attack: Callable[[Producer], None]) -> None:
    # Given two producers with entries waiting, the attacker's partly read by a consumer that
    # died, the other's too
    register(producer, OTHER)
    for n in range(3):
        add(producer, valid(n))
    theirs = [add(producer, valid(n, f"theirs-{n}"), name=OTHER) for n in range(3)]
    pending_on_a_dead_consumer(producer, NAME)
    pending_on_a_dead_consumer(producer, OTHER)
    theirs += [add(producer, valid(n, f"theirs-{n}"), name=OTHER) for n in range(3, 6)]
    # When the attacker trims its stream to nothing, or blocks it with the last possible id
    attack(producer)
    # Then the workers take every entry of the other producer, and end on the attacker's
    inbox = inbox_for(producer, "alive", stale_after_ms=0)
    drain(inbox, producer, OTHER)
    drain(inbox, producer, NAME)
    for n, entry in enumerate(theirs):
        job_id = bound_job(producer, entry, OTHER)
        assert job_id and ref_job(producer, f"theirs-{n}", OTHER) == job_id
        assert job(producer, job_id)["state"] == "queued"
    assert producer.redis.xlen(stream(producer, OTHER)) == 0
    assert add(producer, valid(7, "theirs-later"), name=OTHER)  # their stream still takes more
    drain(inbox, producer, OTHER)
    assert ref_job(producer, "theirs-later", OTHER)
