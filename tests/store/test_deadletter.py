"""Dead-letter operations against real Redis: list, show, requeue, resolve (no worker)."""

from __future__ import annotations

import json
import time

import pytest
import redis

from tests.plugins.dead_letters import dead_letter, dead_letters
from unsign_worker.ops.status import outcomes
from unsign_worker.store.campaigns import CampaignStore
from unsign_worker.store.deadletter import (
    Brief,
    DeadLetterError,
    DeadLetters,
    NoteRequired,
    count_codes,
    require_note,
)
from unsign_worker.store.keys import Keys


@pytest.fixture
def keys(key_prefix: str) -> Keys:
    return Keys(key_prefix)


@pytest.fixture
def dlq(redis_client: redis.Redis, keys: Keys) -> DeadLetters:
    return DeadLetters(redis_client, keys)


def test_entries_are_listed_and_filtered_by_code_and_campaign(
        redis_client: redis.Redis, keys: Keys, dlq: DeadLetters) -> None:
    dead_letter(redis_client, keys, "j1")
    dead_letter(redis_client, keys, "j2", code="FAIL_UNFREEZE_STANDARD_BAIL", campaign="c1")
    dead_letter(redis_client, keys, "j3", campaign="c1")
    assert [e.job_id for e in dlq.entries()] == ["j1", "j2", "j3"]
    assert [e.job_id for e in dlq.entries(code="TOO_MUCH_TYPE_CODE")] == ["j1", "j3"]
    assert [e.job_id for e in dlq.entries(campaign="c1", code="TOO_MUCH_TYPE_CODE")] == ["j3"]
    assert dlq.by_code() == {"TOO_MUCH_TYPE_CODE": 2, "FAIL_UNFREEZE_STANDARD_BAIL": 1}


def test_an_entry_shows_the_meaning_in_both_languages_and_the_advice(
        redis_client: redis.Redis, keys: Keys, dlq: DeadLetters) -> None:
    dead_letter(redis_client, keys, "j1")
    entry = dlq.get("j1")
    assert entry is not None
    data = entry.as_dict()
    assert data["zh"] == "商户存在多条签约信息"
    assert "unique" in data["advice"]
    assert data["identity"] == "customer_code:C00000000001"
    assert data["attempts"] == 3 and data["job"]["job_id"] == "j1"


def test_requeue_puts_the_job_back_under_its_id_and_takes_its_count_back(
        redis_client: redis.Redis, keys: Keys, dlq: DeadLetters) -> None:
    dead_letter(redis_client, keys, "j1", campaign="c1")
    redis_client.hset(keys.campaign("c1"), "state", "done")
    sent: list[str] = []
    dlq.requeue("j1", republish=lambda job_id, now: sent.append(job_id) is None, by="ops@h",
                lease_seconds=60)
    assert sent == ["j1"]
    job = {k.decode(): v.decode() for k, v in redis_client.hgetall(keys.job("j1")).items()}
    assert job["state"] == "queued" and job["last_dead_letter_code"] == "TOO_MUCH_TYPE_CODE"
    assert job["requeued_by"] == "ops@h" and job["requeues"] == "1"
    assert "first_failure_at" not in job and "finished_at" not in job
    assert job["attempts"] == "3"
    assert redis_client.ttl(keys.job("j1")) == -1
    assert not dlq.is_open("j1") and dlq.get("j1") is None
    assert redis_client.hget(keys.counts, "dead_lettered") == b"0"
    assert redis_client.hget(keys.campaign_counts("c1"), "dead_lettered") == b"0"
    assert CampaignStore(redis_client, keys).progress("c1") == {}  # its progress over time too
    assert redis_client.hget(keys.campaign("c1"), "state") == b"running"
    # should this process die before sending, the sweeper re-sends it after the lease
    assert redis_client.zscore(keys.leases, "j1") is not None


def test_requeue_refuses_a_job_not_in_the_queue(dlq: DeadLetters) -> None:
    with pytest.raises(DeadLetterError, match="not in the dead-letter queue"):
        dlq.requeue("nope", republish=lambda j, n: True, by="ops", lease_seconds=60)


def test_requeue_refuses_an_entry_whose_job_record_is_gone(
        redis_client: redis.Redis, keys: Keys, dlq: DeadLetters) -> None:
    dead_letter(redis_client, keys, "j1")
    redis_client.delete(keys.job("j1"))
    with pytest.raises(DeadLetterError, match="resolve it by hand"):
        dlq.requeue("j1", republish=lambda j, n: True, by="ops", lease_seconds=60)
    assert dlq.is_open("j1")


def test_resolve_keeps_who_when_and_why_and_closes_the_entry(
        redis_client: redis.Redis, keys: Keys, dlq: DeadLetters) -> None:
    dead_letter(redis_client, keys, "j1")
    dlq.resolve("j1", note="unsigned at the counter", by="ops@h")
    assert not dlq.is_open("j1") and dlq.size() == 0
    data = dlq.get("j1").as_dict()  # type: ignore[union-attr]
    assert (data["resolved_by"], data["resolution_note"]) == ("ops@h",
                                                              "unsigned at the counter")
    assert data["resolved_at"] is not None
    assert redis_client.zscore(keys.dlq_resolved, "j1") is not None
    assert redis_client.hget(keys.job("j1"), "state") == b"dead_lettered"
    assert redis_client.ttl(keys.job("j1")) > 0
    with pytest.raises(DeadLetterError):
        dlq.requeue("j1", republish=lambda j, n: True, by="ops", lease_seconds=60)


def test_resolve_needs_a_note(redis_client: redis.Redis, keys: Keys,
                              dlq: DeadLetters) -> None:
    dead_letter(redis_client, keys, "j1")
    with pytest.raises(NoteRequired, match="resolve: a note is required"):
        dlq.resolve("j1", note="  ", by="ops")
    assert dlq.is_open("j1")


@pytest.mark.parametrize(("note", "kept"), [("", None), ("  \t\n", None),
                                            (" ticket 4711 ", "ticket 4711")])
def test_one_rule_says_whether_a_note_will_do_for_requeue_and_resolve(
        note: str, kept: str | None) -> None:
    for action in ("requeue", "resolve"):
        if kept is None:
            with pytest.raises(NoteRequired, match=f"^{action}: a note is required"):
                require_note(action, note)
        else:
            assert require_note(action, note) == kept


def test_requeue_and_resolve_are_written_to_the_audit_stream(
        redis_client: redis.Redis, keys: Keys, dlq: DeadLetters) -> None:
    dead_letter(redis_client, keys, "j1")
    dead_letter(redis_client, keys, "j2")
    dlq.requeue("j1", republish=lambda j, n: True, by="ops@h", lease_seconds=60)
    dlq.resolve("j2", note="done by hand", by="ops@h")
    audit = [json.loads(f[b"data"]) for _, f in redis_client.xrange(keys.audit)]
    assert [(a["job_id"], a["outcome"], a["by"]) for a in audit] == [
        ("j1", "requeued", "ops@h"), ("j2", "resolved", "ops@h")]


def test_a_requeue_takes_the_dead_letter_back_from_its_minute_so_the_hour_stays_within_all_time(
        redis_client: redis.Redis, keys: Keys, dlq: DeadLetters) -> None:
    # Given two jobs dead-lettered this minute (all time 2, last hour 2)
    dead_letter(redis_client, keys, "j1")
    dead_letter(redis_client, keys, "j2")
    # When one is requeued and then ends unsigned, as the worker's scripts count it
    dlq.requeue("j1", republish=lambda j, n: True, by="ops", lease_seconds=60)
    for key in (keys.counts, keys.rate(int(time.time() // 60))):
        redis_client.hincrby(key, "unsigned", 1)
    # Then the last hour counts one dead letter, as all time does (it counted two before)
    seen = outcomes(redis_client, keys)
    assert seen["all_time"]["dead_lettered"] == seen["last_hour"]["dead_lettered"] == 1
    assert all(seen["last_hour"][o] <= seen["all_time"][o] for o in seen["all_time"])


def test_a_requeue_after_the_hour_leaves_the_minutes_alone(
        redis_client: redis.Redis, keys: Keys, dlq: DeadLetters) -> None:
    dead_letter(redis_client, keys, "j1")
    old = time.time() - 7200
    redis_client.hset(keys.job("j1"), "finished_at", repr(old))
    dlq.requeue("j1", republish=lambda j, n: True, by="ops", lease_seconds=60)
    assert not redis_client.exists(keys.rate(int(old // 60)))
    assert redis_client.hget(keys.rate(int(time.time() // 60)), "dead_lettered") == b"1"


def test_briefs_list_ids_codes_campaigns_and_times_oldest_first_filtered(
        redis_client: redis.Redis, keys: Keys, dlq: DeadLetters) -> None:
    # Given six dead letters of two codes and two campaigns, one a second
    ids = dead_letters(redis_client, keys, {"STATUS_TYPE_CODE": 4, "TOO_MUCH_TYPE_CODE": 2},
                       campaigns=("c1", "c2"), start=1_000_000.0)
    # Then the briefs come oldest first, with what grouping and paging need
    briefs = dlq.briefs()
    assert [b.job_id for b in briefs] == ids
    assert briefs[0] == Brief(ids[0], "STATUS_TYPE_CODE", "c1", 1_000_000.0)
    assert [b.job_id for b in dlq.briefs(code="TOO_MUCH_TYPE_CODE")] == ids[4:]
    assert [b.job_id for b in dlq.briefs(campaign="c2")] == ids[1::2]
    assert [b.job_id for b in dlq.briefs(before=1_000_002.0)] == ids[:3]
    assert [b.job_id for b in dlq.briefs(chunk=4)] == ids
    assert count_codes(briefs) == dlq.by_code() == {"STATUS_TYPE_CODE": 4,
                                                     "TOO_MUCH_TYPE_CODE": 2}
    # And a page of entries is read whole in the order asked, a missing one left out
    page = dlq.get_many([ids[3], "gone", ids[0]])
    assert [e.job_id for e in page] == [ids[3], ids[0]]
    assert page[0].as_dict()["dead_lettered_at"] == 1_000_003.0
