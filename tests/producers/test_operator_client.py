"""The operator's client (``unsign-worker enqueue``): validation at the caller, the record and
its ``P intake`` entry in one transaction, idempotent references, a conflict refused at once,
crash recovery of an enqueue, status and wait; and a whole round trip from a separate process
that never imports the worker's modules."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest
import redis

from unsign_worker.emulator.agreements import Agreement
from unsign_worker.producers.admission import ReferenceConflictError
from unsign_worker.producers.job_status import JobStatus
from unsign_worker.producers.operator_client import OperatorClient
from unsign_worker.protocol.exceptions import ValidationError
from unsign_worker.store.job import Job

if TYPE_CHECKING:
    from tests.plugins.ops_fixtures import OpsEnv

pytest_plugins = ["tests.plugins.ops_fixtures"]


@pytest.fixture
def client(redis_url: str, key_prefix: str) -> Iterator[OperatorClient]:
    with OperatorClient(broker_url=redis_url, redis_url=redis_url, key_prefix=key_prefix) as c:
        yield c


def queued_messages(client: OperatorClient) -> int:
    """Jobs handed to the workers: entries of ``P intake`` (the client sends no task message)."""
    assert client.redis.llen(client.keys.queue()) == 0
    return int(client.redis.xlen(client.keys.intake))


def test_a_bad_job_raises_at_the_caller_naming_each_field_and_rule(
        client: OperatorClient) -> None:
    with pytest.raises(ValidationError) as caught:
        client.enqueue(type_code="BUSI01", trans_account_out="12345", reference="r\n1")
    found = {(e.field, e.rule) for e in caught.value.errors}
    assert found == {("trans_account_out", "format"), ("reference", "no_control_chars")}
    assert queued_messages(client) == 0


def test_an_empty_job_names_the_missing_pairs(client: OperatorClient) -> None:
    with pytest.raises(ValidationError, match="type_code_or_biz_type"):
        client.enqueue()


def test_a_campaign_id_that_is_not_one_is_refused_naming_the_field(
        client: OperatorClient) -> None:
    with pytest.raises(ValidationError) as caught:
        client.enqueue(customer_code="C00000000001", campaign="../x")
    assert [(e.field, e.rule) for e in caught.value.errors] == [("campaign", "format")]
    assert queued_messages(client) == 0


def test_enqueue_records_the_job_queued_and_hands_it_over_once(client: OperatorClient) -> None:
    job_id = client.enqueue(biz_type="10004", user_email="li.wei@example.com", reference="o-1")
    status = client.status(job_id)
    assert status is not None
    assert (status.state, status.reference, status.is_terminal) == ("queued", "o-1", False)
    assert status.params_masked == {"biz_type": "10004", "user_email": "l***@example.com"}
    assert status.producer == ""  # the operator's job is no producer's
    assert queued_messages(client) == 1
    assert client.find("o-1") == job_id
    # the operator's references live in P ref:, no producer's keys
    assert client.redis.get(client.keys.ref("o-1")) == job_id.encode()
    # the entry carries the job's message, as a task message would
    [(_, fields)] = client.redis.xrange(client.keys.intake)
    message = json.loads(fields[b"job"])
    assert (message["job_id"], message["reference"]) == (job_id, "o-1")
    assert message["params"] == {"biz_type": "10004", "user_email": "li.wei@example.com"}
    assert "producer" not in message


def test_the_record_and_the_entry_are_written_in_one_transaction(
        client: OperatorClient, monkeypatch: pytest.MonkeyPatch) -> None:
    # a failure of the entry's write takes the record with it: nothing half-written
    real = client.producer.redis.pipeline

    def failing(*args: object, **kwargs: object) -> object:
        pipe = real(*args, **kwargs)
        pipe.xadd = lambda *a, **k: pipe.execute_command("XADD", "no-such-arity")
        return pipe

    monkeypatch.setattr(client.producer.redis, "pipeline", failing)
    with pytest.raises(redis.ResponseError):
        client.enqueue(customer_code="C00000000001", reference="order-tx")
    monkeypatch.undo()
    job_id = client.find("order-tx")
    assert job_id is not None and client.status(job_id) is None
    assert queued_messages(client) == 0


def test_the_same_reference_enqueued_twice_returns_the_same_job(client: OperatorClient) -> None:
    first = client.enqueue(customer_code="C00000000001", reference="order-42")
    second = client.enqueue(customer_code="C00000000001", reference="order-42")
    assert first == second
    # the job is still queued, so it was sent again: safe, the worker drops the copy
    assert queued_messages(client) == 2


def test_a_reference_already_finished_is_not_sent_again(client: OperatorClient) -> None:
    job_id = client.enqueue(customer_code="C00000000001", reference="order-43")
    client.redis.hset(client.keys.job(job_id), "state", "unsigned")
    assert client.enqueue(customer_code="C00000000001", reference="order-43") == job_id
    assert queued_messages(client) == 1


def test_a_reference_bound_to_other_parameters_is_refused_and_recorded_rejected(
        client: OperatorClient) -> None:
    job_id = client.enqueue(customer_code="C00000000001", reference="order-44")
    with pytest.raises(ReferenceConflictError) as caught:
        client.enqueue(customer_code="C00000000002", reference="order-44")
    assert caught.value.job_id == job_id
    refused = caught.value.rejected_job_id
    assert refused and refused != job_id
    # the refused request is a job of its own, rejected, listed among the reference's conflicts
    status = client.status(refused)
    assert status is not None
    assert (status.state, status.code, status.reference) == (
        "rejected", "REFERENCE_CONFLICT", "order-44")
    assert client.conflicts("order-44") == [refused]
    assert client.find("order-44") == job_id
    assert queued_messages(client) == 1


def test_an_enqueue_that_crashed_after_binding_the_reference_is_completed_by_the_next(
        client: OperatorClient) -> None:
    # Given a crash right after the reference was bound (no record, no message)
    client.producer.resolve_reference("order-45", "0" * 32)
    # When the application retries
    job_id = client.enqueue(customer_code="C00000000001", reference="order-45")
    # Then the bound job is recorded and sent
    assert job_id == "0" * 32
    status = client.status(job_id)
    assert status is not None and status.state == "queued"
    assert queued_messages(client) == 1


def test_an_enqueue_that_crashed_between_record_and_send_is_sent_by_the_next(
        client: OperatorClient) -> None:
    client.producer.resolve_reference("order-46", "1" * 32)
    client.producer.write_records([Job(job_id="1" * 32, params={"customer_code": "C00000000001"},
                                       reference="order-46")])
    assert client.enqueue(customer_code="C00000000001", reference="order-46") == "1" * 32
    assert queued_messages(client) == 1


def test_status_of_an_unknown_job_is_none_and_wait_says_so(client: OperatorClient) -> None:
    assert client.status("nope") is None
    with pytest.raises(KeyError):
        client.wait("nope", timeout=0)


def test_wait_times_out_on_a_job_that_does_not_end(client: OperatorClient) -> None:
    job_id = client.enqueue(customer_code="C00000000001")
    with pytest.raises(TimeoutError, match="still queued"):
        client.wait(job_id, timeout=0.3)


def test_the_client_repr_shows_no_url(key_prefix: str) -> None:
    with OperatorClient(broker_url="redis://:s3cret@127.0.0.1:6379/13",
                        redis_url="redis://op:s3cret2@127.0.0.1:6379/13",
                        key_prefix=key_prefix) as c:
        assert "s3cret" not in repr(c) and key_prefix in repr(c)


def test_job_status_json_shape_is_stable() -> None:
    status = JobStatus.from_record("j1", {b"state": b"dead_lettered", b"code": b"X",
                                          b"attempts": b"2", b"params": b'{"customer_code":"C1"}',
                                          b"finished_at": b"1.5", b"producer": b"crm"})
    assert status.as_dict() == {
        "job_id": "j1", "state": "dead_lettered", "terminal": True, "code": "X", "reason": "",
        "attempts": 2, "campaign": "", "reference": "", "original": "", "created_at": None,
        "updated_at": None, "finished_at": 1.5, "params": {"customer_code": "C1"},
        "producer": "crm"}
    assert status.is_failure and not status.is_success


CLIENT_PROCESS = r"""
import json, os, sys
from unsign_worker.producers.operator_client import OperatorClient
from unsign_worker.protocol.exceptions import ValidationError

url, prefix = os.environ["UNSIGN_REDIS_URL"], os.environ["UNSIGN_KEY_PREFIX"]
with OperatorClient(broker_url=url, redis_url=url, key_prefix=prefix) as client:
    try:
        client.enqueue(customer_code="much-too-long-customer-code")
        invalid = "accepted"
    except ValidationError as exc:
        invalid = str(exc)
    first = client.enqueue(customer_code="C00000000001", reference="app-1")
    again = client.enqueue(customer_code="C00000000001", reference="app-1")
    status = client.wait(first, timeout=90)
forbidden = ("processor", "celery_app", "gateway", "context", "settings", "signing", "dedup",
             "sweeper", "breaker", "hooks", "attempt", "response", "celeryconfig")
loaded = sorted(m for m in sys.modules if m.split(".")[-1] in forbidden
                and (m.startswith("unsign_worker") or m == "celeryconfig"))
print(json.dumps({"first": first, "again": again, "state": status.state, "loaded": loaded,
                  "invalid": invalid}))
"""


@pytest.mark.slow
def test_a_separate_process_enqueues_and_waits_without_importing_the_worker(
        ops_env: Callable[..., OpsEnv]) -> None:
    env = ops_env([Agreement(id="a1", customer_code="C00000000001")])
    env.workers.start_worker()
    done = env.python(CLIENT_PROCESS)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["loaded"] == []
    assert "customer_code" in out["invalid"] and "max_length" in out["invalid"]
    assert out["first"] == out["again"]
    assert out["state"] == "unsigned"
    assert env.stats()["unsigns"] == 1
