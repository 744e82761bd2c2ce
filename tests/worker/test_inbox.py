"""The inbox streams: entry parsing, safe hand-over to the broker, redelivery, and a job added
with ``redis-cli`` alone to a producer's stream and carried out by a real worker."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from types import SimpleNamespace
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
from unsign_worker.store.producer_registry import ProducerRegistry
from unsign_worker.worker import inbox as inbox_module
from unsign_worker.worker.inbox import IDLE_POLL_SECONDS, INVALID_CODE, Inbox, parse_entry

if TYPE_CHECKING:
    from tests.plugins.ops_fixtures import OpsEnv

pytest_plugins = ["tests.plugins.ops_fixtures"]

#: The producer whose stream these tests write.
NAME = "crm"


@pytest.fixture
def producer(redis_url: str, redis_client: redis.Redis, key_prefix: str) -> Iterator[Producer]:
    """The workers' producer (records, messages), with producer :data:`NAME` registered."""
    app = producer_app(redis_url, key_prefix)
    keys = Keys(key_prefix)
    ProducerRegistry(redis_client, keys).add(NAME)
    yield Producer(app, redis_client, keys)
    app.close()


def inbox_for(producer: Producer, consumer: str = "w1", **options: Any) -> Inbox:
    return Inbox(producer.redis, producer.keys, producer, consumer=consumer, **options)


def stream(producer: Producer, name: str = NAME) -> str:
    return producer.keys.inbox(name)


def add(producer: Producer, fields: dict[str, str], name: str = NAME, **options: Any) -> str:
    """Add an entry to producer ``name``'s stream, as that producer would; its entry id."""
    return producer.redis.xadd(stream(producer, name), fields, **options).decode()


def bound_job(producer: Producer, entry_id: str, name: str = NAME) -> str:
    """The job id bound to an entry of producer ``name``'s stream, or "" if none."""
    found = producer.redis.get(producer.keys.producer_entry(name, entry_id))
    return found.decode() if isinstance(found, bytes) else ""


def ref_job(producer: Producer, reference: str, name: str = NAME) -> str:
    """The job id producer ``name``'s reference is bound to, or "" if none."""
    found = producer.redis.get(producer.keys.producer_ref(name, reference))
    return found.decode() if isinstance(found, bytes) else ""


def job(producer: Producer, job_id: str) -> dict[str, str]:
    raw = producer.redis.hgetall(producer.keys.job(job_id))
    return {k.decode(): v.decode() for k, v in raw.items()}


def view(producer: Producer, job_id: str, name: str = NAME) -> dict[str, str]:
    raw = producer.redis.hgetall(producer.keys.producer_job(name, job_id))
    return {k.decode(): v.decode() for k, v in raw.items()}


def messages(producer: Producer) -> list[tuple[str, list[str]]]:
    """The task messages in the broker's queue, oldest first: (task name, job ids)."""
    out = []
    for raw in reversed(producer.redis.lrange(producer.keys.queue(), 0, -1)):
        message = json.loads(raw)
        _, kwargs, _ = json.loads(base64.b64decode(message["body"]))
        out.append((message["headers"]["task"], [j["job_id"] for j in kwargs["jobs"]]))
    return out


def drain(inbox: Inbox, producer: Producer, name: str = NAME, timeout: float = 20.0) -> int:
    """Poll until producer ``name``'s stream is empty, nothing of it pending (generous
    deadline); the entries the polls acknowledged or refused."""
    done = 0

    def emptied() -> bool:
        nonlocal done
        done += inbox.poll_once(block_ms=20)
        key = stream(producer, name)
        if producer.redis.xlen(key):
            return False
        try:
            return producer.redis.xpending(key, INBOX_GROUP)["pending"] == 0
        except redis.ResponseError:  # no group yet: the next poll creates it
            return False

    wait_for(emptied, timeout=timeout, interval=0, what="the inbox to empty the stream")
    return done


def handed(producer: Producer) -> list[str]:
    """Every job id handed to the pool so far, sorted."""
    return sorted(job_id for _, ids in messages(producer) for job_id in ids)


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
    entry = add(producer, {"job": json.dumps({"customer_code": "C00000000001",
                                              "reference": "order-1"})})
    assert inbox.poll_once(block_ms=10) == 1
    job_id = ref_job(producer, "order-1")
    assert job_id and bound_job(producer, entry) == job_id
    record = job(producer, job_id)
    assert (record["state"], record["producer"]) == ("queued", NAME)
    assert view(producer, job_id)["state"] == "queued"
    assert "params" not in view(producer, job_id)
    assert handed(producer) == [job_id]
    assert producer.redis.xlen(stream(producer)) == 0
    assert producer.redis.xpending(stream(producer), INBOX_GROUP)["pending"] == 0


def test_a_poll_of_empty_streams_looks_again_until_an_entry_comes(
        producer: Producer, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given an inbox polling empty streams: no blocking read in Redis, it looks again after a
    # short pause, and the producer adds an entry during its second pause
    inbox = inbox_for(producer)
    inbox.refresh()
    pauses: list[float] = []

    def pause(seconds: float) -> None:
        pauses.append(seconds)
        if len(pauses) == 2:
            add(producer, {"customer_code": "C00000000001", "reference": "later"})
        time.sleep(seconds)

    monkeypatch.setattr(inbox_module, "time", SimpleNamespace(monotonic=time.monotonic,
                                                              sleep=pause))
    # When it polls, for up to a minute
    taken = inbox.poll_once(block_ms=60_000)
    # Then the look after that pause took the entry, and the poll returned at once
    assert (taken, len(pauses)) == (1, 2)
    assert all(0 < p <= IDLE_POLL_SECONDS for p in pauses)
    assert ref_job(producer, "later")


def test_a_poll_of_empty_streams_returns_nothing_once_its_time_is_up(
        producer: Producer) -> None:
    assert inbox_for(producer).poll_once(block_ms=50) == 0


def test_a_producer_added_after_the_inbox_started_is_read_once_the_list_is_refreshed(
        producer: Producer) -> None:
    inbox = inbox_for(producer)
    inbox.ensure_group()
    ProducerRegistry(producer.redis, producer.keys).add("billing")
    entry = add(producer, {"customer_code": "C00000000001"}, name="billing")
    inbox.refresh()
    assert stream(producer, "billing") in inbox.streams
    assert inbox.poll_once(block_ms=10) == 1
    taken = bound_job(producer, entry, "billing")
    assert taken and job(producer, taken)["producer"] == "billing"


def test_entries_of_both_streams_go_to_the_pool_in_batches_then_are_acknowledged(
        producer: Producer) -> None:
    # Given jobs of the operator (recorded, in P intake) and entries of a producer's stream
    inbox = inbox_for(producer, batch_size=3)
    inbox.ensure_group()
    admitted = client_jobs(4)
    producer.admit(admitted)
    for n in range(3):
        add(producer, {"customer_code": f"C{n + 50:011d}", "reference": f"in-{n}"})
    # When the inbox polls once
    assert inbox.poll_once(block_ms=10) == 7
    # Then every job went to the pool in batch messages of at most 3 jobs, each job once
    sent = messages(producer)
    assert {name for name, _ in sent} == {UNSIGN_JOBS_TASK}
    assert sorted(len(ids) for _, ids in sent) == [1, 3, 3]
    inbox_ids = [ref_job(producer, f"in-{n}") for n in range(3)]
    assert handed(producer) == sorted([j.job_id for j in admitted] + inbox_ids)
    # And both streams are empty, nothing pending
    for key in (stream(producer), producer.keys.intake):
        assert producer.redis.xlen(key) == 0
        assert producer.redis.xpending(key, INBOX_GROUP)["pending"] == 0


def test_one_read_records_its_new_jobs_together_and_the_others_one_by_one(
        producer: Producer) -> None:
    # Given a reference of this producer bound before to a job on record, then one read of
    # mixed entries
    bound = Job(job_id="f" * 32, params={"customer_code": "C00000000005"}, reference="taken",
                producer=NAME)
    producer.resolve_reference("taken", bound.job_id, NAME)
    producer.write_records([bound])
    fields: list[dict[str, str]] = [
        {"customer_code": "C00000000001", "reference": "same"},
        {"customer_code": "C00000000002", "reference": "same"},  # other parameters: refused
        {"customer_code": "C00000000001", "reference": "same"},  # the same job again
        {"customer_code": "C00000000003"},
        {"customer_code": "bad!", "reference": "bad-1"},
        {"customer_code": "C00000000005", "reference": "taken"},  # the job bound before
    ]
    entries = [add(producer, f) for f in fields]
    # When the inbox polls once
    assert inbox_for(producer).poll_once(block_ms=10) == len(fields)
    # Then each entry ended as it would have alone
    ids = [bound_job(producer, e) for e in entries]
    assert ref_job(producer, "same") == ids[0]
    assert job(producer, ids[0])["state"] == "queued"
    conflict = job(producer, ids[1])
    assert (conflict["state"], conflict["code"]) == ("rejected", "REFERENCE_CONFLICT")
    assert ids[2] == ids[0]  # the entry was pointed at the first entry's job
    assert job(producer, ids[3])["state"] == "queued"
    invalid = job(producer, ids[4])
    assert (invalid["state"], invalid["code"]) == ("rejected", INVALID_CODE)
    assert ids[5] == bound.job_id
    # And each job went to the pool once (the repeated one too)
    assert handed(producer) == sorted([ids[0], ids[3], bound.job_id])
    # And the read made no other record: the bound job, two new ones, two rejected
    records = list(producer.redis.scan_iter(match=producer.keys.job("*")))
    assert len(records) == 5


def test_a_crash_between_reading_and_handing_over_loses_nothing(producer: Producer) -> None:
    # Given a consumer that dies after reading, before its batch reaches the broker
    admitted = client_jobs(2)
    producer.admit(admitted)
    add(producer, {"customer_code": "C00000000009", "reference": "crash-1"})

    def die(jobs: object) -> None:
        raise KeyboardInterrupt  # stands for the process killed here

    with pytest.raises(KeyboardInterrupt):
        inbox_for(producer, hand_over=die).poll_once(block_ms=10)
    assert producer.redis.llen(producer.keys.queue()) == 0
    # When it starts again under the same name
    assert inbox_for(producer).poll_once(block_ms=10) == 3
    # Then every job is handed over, and the entries are gone
    inbox_id = ref_job(producer, "crash-1")
    assert handed(producer) == sorted([j.job_id for j in admitted] + [inbox_id])
    for key in (stream(producer), producer.keys.intake):
        assert producer.redis.xlen(key) == 0


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
    entry_id = add(producer, {"customer_code": "C1 2", "reference": "bad-1"})
    assert inbox.poll_once(block_ms=10) == 1
    job_id = ref_job(producer, "bad-1")
    assert job_id and job_id == bound_job(producer, entry_id)
    record = job(producer, job_id)
    assert (record["state"], record["code"]) == ("rejected", INVALID_CODE)
    assert "customer_code" in record["reason"] and "[format]" in record["reason"]
    seen = view(producer, job_id)
    assert (seen["state"], seen["code"], seen["reason"]) == (
        "rejected", INVALID_CODE, record["reason"])
    assert producer.redis.llen(producer.keys.queue()) == 0
    assert producer.redis.hget(producer.keys.counts, "rejected") == b"1"
    assert producer.redis.hget(producer.keys.producers_rejected, f"{NAME}:invalid_job") == b"1"


def test_an_entry_read_again_after_a_crash_maps_to_the_same_job(producer: Producer) -> None:
    # Given an entry whose job was enqueued, but the consumer died before acknowledging it
    inbox = inbox_for(producer)
    inbox.ensure_group()
    entry_id = add(producer, {"customer_code": "C00000000001"})
    producer.redis.xreadgroup(INBOX_GROUP, "w1", {stream(producer): ">"})
    first = inbox.take(NAME, entry_id, {b"customer_code": b"C00000000001"})
    assert bound_job(producer, entry_id) == first
    producer.redis.hset(producer.keys.job(first), "state", "unsigned")
    # When it is read again
    assert inbox.poll_once(block_ms=10) == 1
    # Then it is the same job, not sent again, and the entry is gone
    assert job(producer, first)["state"] == "unsigned"
    assert bound_job(producer, entry_id) == first
    assert producer.redis.llen(producer.keys.queue()) == 1
    assert producer.redis.xlen(stream(producer)) == 0


def test_an_entry_left_pending_by_a_dead_consumer_is_taken_over(producer: Producer) -> None:
    inbox_for(producer, "dead").ensure_group()
    add(producer, {"customer_code": "C00000000001", "reference": "order-2"})
    producer.redis.xreadgroup(INBOX_GROUP, "dead", {stream(producer): ">"})
    alive = inbox_for(producer, "alive", stale_after_ms=0)
    assert alive.poll_once(block_ms=10) == 1
    assert ref_job(producer, "order-2")
    assert producer.redis.xpending(stream(producer), INBOX_GROUP)["pending"] == 0


def test_entries_added_before_any_worker_started_are_not_missed(producer: Producer) -> None:
    add(producer, {"customer_code": "C00000000001", "reference": "early"})
    assert inbox_for(producer).poll_once(block_ms=10) == 1
    assert ref_job(producer, "early")


def test_the_stream_of_a_producer_not_registered_is_not_read(producer: Producer) -> None:
    entry = add(producer, {"customer_code": "C00000000001"}, name="stranger")
    assert inbox_for(producer).poll_once(block_ms=10) == 0
    assert stream(producer, "stranger") not in inbox_for(producer).streams
    assert bound_job(producer, entry, "stranger") == ""
    assert producer.redis.xlen(stream(producer, "stranger")) == 1


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
    keys = env.workers.keys
    ProducerRegistry(env.workers.redis, keys).add("shell")
    env.workers.start_worker()
    cli = redis_cli_args(redis_url)
    payload = json.dumps({"customer_code": "C00000000007", "reference": "shell-7"})
    added = subprocess.run([*cli, "XADD", keys.inbox("shell"), "*", "job", payload],
                           capture_output=True, text=True, check=True)
    assert added.stdout.strip()
    job_id = wait_for(lambda: subprocess.run([*cli, "GET", keys.producer_ref("shell", "shell-7")],
                                             capture_output=True, text=True,
                                             check=True).stdout.strip(),
                      timeout=60, what="the inbox to take the entry")
    jobs = env.workers.wait_terminal([job_id])
    assert jobs[job_id]["state"] == "unsigned"
    assert env.stats()["unsigns"] == 1
    assert env.workers.redis.xlen(keys.inbox("shell")) == 0
    seen = subprocess.run([*cli, "HGET", keys.producer_job("shell", job_id), "state"],
                          capture_output=True, text=True, check=True).stdout.strip()
    assert seen == "unsigned"


def test_an_entry_whose_chosen_id_names_an_existing_job_never_overwrites_its_record(
        producer: Producer) -> None:
    # Given a job an earlier entry created, which has since ended unsigned, and a stream
    # emptied (deleted by an operator after the producer blocked it)
    inbox = inbox_for(producer)
    inbox.ensure_group()
    entry = add(producer, {"customer_code": "C00000000001"})
    assert inbox.poll_once(block_ms=10) == 1
    victim = bound_job(producer, entry)
    assert victim
    producer.redis.hset(producer.keys.job(victim), "state", "unsigned")
    producer.redis.delete(stream(producer))
    inbox.ensure_group()

    # When the producer re-adds that entry id, naming another agreement and a new reference
    add(producer, {"customer_code": "C00000000666", "reference": "attacker-1"}, id=entry)
    assert drain(inbox, producer) == 1

    # Then the entry still names the victim's job, whose record names its own agreement and
    # outcome
    assert bound_job(producer, entry) == victim
    record = job(producer, victim)
    assert record["state"] == "unsigned"
    assert json.loads(record["params"]) == {"customer_code": "C00000000001"}
    assert record["reference"] == ""
