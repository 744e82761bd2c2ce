"""The inbox stream: entry parsing, safe hand-over to the broker, redelivery, and a job added with
``redis-cli`` alone and carried out by a real worker."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest
import redis

from tests.plugins.worker_fixtures import wait_for
from unsign_worker.emulator.agreements import Agreement
from unsign_worker.producers.producer import Producer, producer_app
from unsign_worker.protocol.exceptions import ValidationError
from unsign_worker.store.job import UNSIGN_JOBS_TASK, Job
from unsign_worker.store.keys import INBOX_GROUP, Keys
from unsign_worker.worker.inbox import INVALID_CODE, Inbox, job_id_for_entry, parse_entry

if TYPE_CHECKING:
    from tests.plugins.ops_fixtures import OpsEnv

pytest_plugins = ["tests.plugins.ops_fixtures"]


@pytest.fixture
def producer(redis_url: str, redis_client: redis.Redis, key_prefix: str) -> Iterator[Producer]:
    app = producer_app(redis_url, key_prefix)
    yield Producer(app, redis_client, Keys(key_prefix))
    app.close()


def inbox_for(producer: Producer, consumer: str = "w1", **options: Any) -> Inbox:
    return Inbox(producer.redis, producer.keys, producer, consumer=consumer, **options)


def job(producer: Producer, job_id: str) -> dict[str, str]:
    raw = producer.redis.hgetall(producer.keys.job(job_id))
    return {k.decode(): v.decode() for k, v in raw.items()}


def messages(producer: Producer) -> list[tuple[str, list[str]]]:
    """The task messages in the broker's queue, oldest first: (task name, job ids)."""
    out = []
    for raw in reversed(producer.redis.lrange(producer.keys.queue(), 0, -1)):
        message = json.loads(raw)
        _, kwargs, _ = json.loads(base64.b64decode(message["body"]))
        out.append((message["headers"]["task"], [j["job_id"] for j in kwargs["jobs"]]))
    return out


def client_jobs(n: int) -> list[Job]:
    return [Job(job_id=uuid.uuid4().hex, params={"customer_code": f"C{i:011d}"})
            for i in range(n)]


def test_an_entry_is_a_json_job_field_or_flat_fields() -> None:
    assert parse_entry({b"job": b'{"customer_code": "C1", "reference": "r1"}'}) == (
        {"customer_code": "C1"}, "r1")
    assert parse_entry({b"customer_code": b"C1"}) == ({"customer_code": "C1"}, "")


@pytest.mark.parametrize("fields, rule", [
    ({b"job": b"{nope"}, "json"),
    ({b"job": b"[1]"}, "json_object"),
    ({b"job": b'{"customer_code": "C1", "reference": 7}'}, "type"),
])
def test_an_unreadable_entry_names_its_rule(fields: dict[bytes, bytes], rule: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_entry(fields)
    assert caught.value.errors[0].rule == rule


def test_a_valid_entry_is_recorded_sent_acknowledged_and_deleted(producer: Producer) -> None:
    inbox = inbox_for(producer)
    inbox.ensure_group()
    producer.redis.xadd(producer.keys.inbox,
                        {"job": json.dumps({"customer_code": "C00000000001",
                                            "reference": "order-1"})})
    assert inbox.poll_once(block_ms=10) == 1
    job_id = producer.redis.get(producer.keys.ref("order-1")).decode()
    assert job(producer, job_id)["state"] == "queued"
    assert producer.redis.llen(producer.keys.queue()) == 1
    assert producer.redis.xlen(producer.keys.inbox) == 0
    assert producer.redis.xpending(producer.keys.inbox, INBOX_GROUP)["pending"] == 0


def test_entries_of_both_streams_go_to_the_pool_in_batches_then_are_acknowledged(
        producer: Producer) -> None:
    # Given jobs of the client (recorded, in P intake) and entries of the inbox
    inbox = inbox_for(producer, batch_size=3)
    inbox.ensure_group()
    admitted = client_jobs(4)
    producer.admit(admitted)
    for n in range(3):
        producer.redis.xadd(producer.keys.inbox, {"customer_code": f"C{n + 50:011d}",
                                                  "reference": f"in-{n}"})
    # When the inbox polls once
    assert inbox.poll_once(block_ms=10) == 7
    # Then every job went to the pool in batch messages of at most 3 jobs, each job once
    sent = messages(producer)
    assert {name for name, _ in sent} == {UNSIGN_JOBS_TASK}
    assert sorted(len(ids) for _, ids in sent) == [1, 3, 3]
    handed = [job_id for _, ids in sent for job_id in ids]
    inbox_ids = [producer.redis.get(producer.keys.ref(f"in-{n}")).decode() for n in range(3)]
    assert sorted(handed) == sorted([j.job_id for j in admitted] + inbox_ids)
    # And both streams are empty, nothing pending
    for stream in (producer.keys.inbox, producer.keys.intake):
        assert producer.redis.xlen(stream) == 0
        assert producer.redis.xpending(stream, INBOX_GROUP)["pending"] == 0


def test_one_read_records_its_new_jobs_together_and_the_others_one_by_one(
        producer: Producer) -> None:
    # Given a reference bound before to a job on record, then one read of mixed entries
    bound = Job(job_id="f" * 32, params={"customer_code": "C00000000005"}, reference="taken")
    producer.resolve_reference("taken", bound.job_id)
    producer.write_records([bound])
    fields: list[dict[str, str]] = [
        {"customer_code": "C00000000001", "reference": "same"},
        {"customer_code": "C00000000002", "reference": "same"},  # other parameters: refused
        {"customer_code": "C00000000001", "reference": "same"},  # the same job again
        {"customer_code": "C00000000003"},
        {"customer_code": "bad!", "reference": "bad-1"},
        {"customer_code": "C00000000005", "reference": "taken"},  # the job bound before
    ]
    entries = [producer.redis.xadd(producer.keys.inbox, f).decode() for f in fields]
    # When the inbox polls once
    assert inbox_for(producer).poll_once(block_ms=10) == len(fields)
    # Then each entry ended as it would have alone
    ids = [job_id_for_entry(producer.keys.inbox, e) for e in entries]
    assert producer.redis.get(producer.keys.ref("same")).decode() == ids[0]
    assert job(producer, ids[0])["state"] == "queued"
    assert (job(producer, ids[1])["state"], job(producer, ids[1])["code"]) == (
        "rejected", "REFERENCE_CONFLICT")
    assert job(producer, ids[2]) == {}  # mapped to the first entry's job
    assert job(producer, ids[3])["state"] == "queued"
    assert (job(producer, ids[4])["state"], job(producer, ids[4])["code"]) == (
        "rejected", INVALID_CODE)
    handed = sorted(job_id for _, batch in messages(producer) for job_id in batch)
    assert handed == sorted([ids[0], ids[0], ids[3], bound.job_id])


def test_a_crash_between_reading_and_handing_over_loses_nothing(producer: Producer) -> None:
    # Given a consumer that dies after reading, before its batch reaches the broker
    admitted = client_jobs(2)
    producer.admit(admitted)
    producer.redis.xadd(producer.keys.inbox, {"customer_code": "C00000000009",
                                              "reference": "crash-1"})

    def die(jobs: object) -> None:
        raise KeyboardInterrupt  # stands for the process killed here

    with pytest.raises(KeyboardInterrupt):
        inbox_for(producer, hand_over=die).poll_once(block_ms=10)
    assert producer.redis.llen(producer.keys.queue()) == 0
    # When it starts again under the same name
    assert inbox_for(producer).poll_once(block_ms=10) == 3
    # Then every job is handed over, and the entries are gone
    handed = sorted(job_id for _, ids in messages(producer) for job_id in ids)
    inbox_id = producer.redis.get(producer.keys.ref("crash-1")).decode()
    assert handed == sorted([j.job_id for j in admitted] + [inbox_id])
    for stream in (producer.keys.inbox, producer.keys.intake):
        assert producer.redis.xlen(stream) == 0


def test_an_unreadable_intake_entry_is_dropped_and_the_others_handed_over(
        producer: Producer) -> None:
    admitted = client_jobs(1)
    producer.redis.xadd(producer.keys.intake, {"job": "{not json"})
    producer.admit(admitted)
    assert inbox_for(producer).poll_once(block_ms=10) == 2
    assert messages(producer) == [(UNSIGN_JOBS_TASK, [admitted[0].job_id])]
    assert producer.redis.xlen(producer.keys.intake) == 0


def test_an_invalid_entry_is_recorded_rejected_with_the_reason_and_never_sent(
        producer: Producer) -> None:
    inbox = inbox_for(producer)
    entry_id = producer.redis.xadd(producer.keys.inbox, {"customer_code": "C1 2",
                                                         "reference": "bad-1"}).decode()
    assert inbox.poll_once(block_ms=10) == 1
    job_id = producer.redis.get(producer.keys.ref("bad-1")).decode()
    assert job_id == job_id_for_entry(producer.keys.inbox, entry_id)
    record = job(producer, job_id)
    assert (record["state"], record["code"]) == ("rejected", INVALID_CODE)
    assert "customer_code" in record["reason"] and "[format]" in record["reason"]
    assert producer.redis.llen(producer.keys.queue()) == 0
    assert producer.redis.hget(producer.keys.counts, "rejected") == b"1"


def test_an_entry_read_again_after_a_crash_maps_to_the_same_job(producer: Producer) -> None:
    # Given an entry whose job was enqueued, but the consumer died before acknowledging it
    inbox = inbox_for(producer)
    inbox.ensure_group()
    entry_id = producer.redis.xadd(producer.keys.inbox, {"customer_code": "C00000000001"})
    producer.redis.xreadgroup(INBOX_GROUP, "w1", {producer.keys.inbox: ">"})
    first = inbox.take(entry_id.decode(), {b"customer_code": b"C00000000001"})
    producer.redis.hset(producer.keys.job(first), "state", "unsigned")
    # When it is read again
    assert inbox.poll_once(block_ms=10) == 1
    # Then it is the same job, not sent again, and the entry is gone
    assert job(producer, first)["state"] == "unsigned"
    assert producer.redis.llen(producer.keys.queue()) == 1
    assert producer.redis.xlen(producer.keys.inbox) == 0


def test_an_entry_left_pending_by_a_dead_consumer_is_taken_over(producer: Producer) -> None:
    inbox_for(producer, "dead").ensure_group()
    producer.redis.xadd(producer.keys.inbox, {"customer_code": "C00000000001",
                                              "reference": "order-2"})
    producer.redis.xreadgroup(INBOX_GROUP, "dead", {producer.keys.inbox: ">"})
    alive = inbox_for(producer, "alive", stale_after_ms=0)
    assert alive.poll_once(block_ms=10) == 1
    assert producer.redis.get(producer.keys.ref("order-2")) is not None
    assert producer.redis.xpending(producer.keys.inbox, INBOX_GROUP)["pending"] == 0


def test_entries_added_before_any_worker_started_are_not_missed(producer: Producer) -> None:
    producer.redis.xadd(producer.keys.inbox, {"customer_code": "C00000000001",
                                              "reference": "early"})
    assert inbox_for(producer).poll_once(block_ms=10) == 1
    assert producer.redis.get(producer.keys.ref("early")) is not None


def redis_cli_args(redis_url: str) -> list[str]:
    parts = urlsplit(redis_url)
    args = ["redis-cli", "-h", parts.hostname or "127.0.0.1", "-p", str(parts.port or 6379),
            "-n", (parts.path or "/0").lstrip("/") or "0"]
    if parts.password:
        args += ["-a", parts.password, "--no-auth-warning"]
    return args


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("redis-cli") is None, reason="redis-cli is not installed")
def test_a_job_added_with_redis_cli_alone_is_carried_out_by_a_worker(
        ops_env: Callable[..., OpsEnv], redis_url: str) -> None:
    env = ops_env([Agreement(id="a1", customer_code="C00000000007")])
    env.workers.start_worker()
    cli = redis_cli_args(redis_url)
    keys = env.workers.keys
    payload = json.dumps({"customer_code": "C00000000007", "reference": "shell-7"})
    added = subprocess.run([*cli, "XADD", keys.inbox, "*", "job", payload],
                           capture_output=True, text=True, check=True)
    assert added.stdout.strip()
    job_id = wait_for(lambda: subprocess.run([*cli, "GET", keys.ref("shell-7")],
                                             capture_output=True, text=True,
                                             check=True).stdout.strip(),
                      timeout=60, what="the inbox to take the entry")
    jobs = env.workers.wait_terminal([job_id])
    assert jobs[job_id]["state"] == "unsigned"
    assert env.stats()["unsigns"] == 1
    assert env.workers.redis.xlen(keys.inbox) == 0


def test_an_entry_whose_chosen_id_names_an_existing_job_never_overwrites_its_record(
        producer: Producer) -> None:
    # Given a job an earlier inbox entry created, which has since ended unsigned, and a stream
    # emptied (deleted by an operator after it was blocked)
    inbox = inbox_for(producer)
    inbox.ensure_group()
    entry = producer.redis.xadd(producer.keys.inbox, {"customer_code": "C00000000001"})
    assert inbox.poll_once(block_ms=10) == 1
    victim = job_id_for_entry(producer.keys.inbox, entry.decode())
    producer.redis.hset(producer.keys.job(victim), "state", "unsigned")
    producer.redis.delete(producer.keys.inbox)
    inbox.ensure_group()

    # When a producer re-adds that entry id, naming another agreement and a new reference
    producer.redis.xadd(producer.keys.inbox, {"customer_code": "C00000000666",
                                              "reference": "attacker-1"}, id=entry)
    inbox.poll_once(block_ms=10)

    # Then the victim's record still names its own agreement and outcome
    record = job(producer, victim)
    assert record["state"] == "unsigned"
    assert json.loads(record["params"]) == {"customer_code": "C00000000001"}
    assert record["reference"] == ""
