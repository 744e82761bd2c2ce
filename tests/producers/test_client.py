"""The Python client of other applications, run as one producer: validation at the caller, one
entry per request in the producer's own stream, limits (backlog, entry size), the status of a
request as a worker's inbox takes it, references per producer, and never a job's parameters.

The worker's side is an in-process :class:`~unsign_worker.worker.inbox.Inbox` (its hand-over
to the pool stubbed), or real worker processes against the gateway emulator over TLS. The
expected key names are written out as docs/security.md gives them, never computed with the
product's own key helpers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import redis
from click.testing import CliRunner

from tests.plugins.ports import free_port
from tests.plugins.worker_fixtures import WorkerEnv, wait_for
from tests.private_redis import needs_redis_server
from tests.system.test_security_redis import ADMIN_PASSWORD, RedisServer
from unsign_worker.cli.main import cli
from unsign_worker.emulator.agreements import Agreement
from unsign_worker.producers.client import BacklogFullError, UnsignClient
from unsign_worker.producers.job_status import JobStatus
from unsign_worker.producers.operator_client import OperatorClient
from unsign_worker.producers.producer import Producer, producer_app
from unsign_worker.protocol.exceptions import ConfigError, ValidationError
from unsign_worker.store.job import Job
from unsign_worker.store.keys import Keys
from unsign_worker.store.producer_registry import ProducerRegistry
from unsign_worker.worker.inbox import Inbox

if TYPE_CHECKING:
    from tests.plugins.ops_fixtures import OpsEnv

pytest_plugins = ["tests.plugins.ops_fixtures"]

REQUEST_ID = re.compile(r"[0-9]+-[0-9]+")
JOB_ID = re.compile(r"[0-9a-f]{32}")


@dataclass
class Rig:
    """A producer registry, the clients of the test's producers and a worker's inbox, on one
    Redis and key prefix."""

    url: str
    prefix: str
    admin: redis.Redis
    producer: Producer
    registry: ProducerRegistry
    #: the jobs the inbox handed to the pool
    handed: list[Job] = field(default_factory=list)
    clients: list[UnsignClient] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.inbox = Inbox(self.admin, self.producer.keys, self.producer, consumer="w1",
                           hand_over=self.handed.extend)

    def client(self, name: str = "crm") -> UnsignClient:
        made = UnsignClient(self.url, producer=name, key_prefix=self.prefix)
        self.clients.append(made)
        return made

    def take(self, expected: int) -> None:
        """Let the inbox take ``expected`` entries (refused ones included), and no more."""
        taken = [0]

        def more() -> bool:
            taken[0] += self.inbox.poll_once(block_ms=100)
            return taken[0] >= expected

        wait_for(more, timeout=30, what=f"the inbox to take {expected} entries")
        assert taken[0] == expected

    def stream(self, name: str = "crm") -> str:
        return f"{self.prefix}inbox:{name}"

    def keys_now(self) -> set[bytes]:
        return set(self.admin.scan_iter(match=f"{self.prefix}*", count=1000))


def known(client: UnsignClient, request: str) -> JobStatus:
    """The status of a request (or job) ``client`` must know."""
    found = client.status(request)
    assert found is not None, f"no status of {request}"
    return found


@pytest.fixture
def rig(redis_url: str, redis_client: redis.Redis, key_prefix: str) -> Iterator[Rig]:
    app = producer_app(redis_url, key_prefix)
    made = Rig(url=redis_url, prefix=key_prefix, admin=redis_client,
               producer=Producer(app, redis_client, Keys(key_prefix)),
               registry=ProducerRegistry(redis_client, Keys(key_prefix)))
    yield made
    for client in made.clients:
        client.close()
    app.close()


@pytest.fixture
def crm(rig: Rig) -> UnsignClient:
    """Producer ``crm``, known to the workers with the default limits."""
    rig.registry.add("crm")
    return rig.client("crm")


# --- the request, checked at the caller -----------------------------------------------------


def test_a_bad_job_raises_at_the_caller_naming_each_field_and_rule(rig: Rig,
                                                                   crm: UnsignClient) -> None:
    with pytest.raises(ValidationError) as caught:
        crm.enqueue(type_code="BUSI01", trans_account_out="12345", reference="r\n1")
    found = {(e.field, e.rule) for e in caught.value.errors}
    assert found == {("trans_account_out", "format"), ("reference", "no_control_chars")}
    assert rig.admin.xlen(rig.stream()) == 0


def test_an_empty_job_names_the_missing_pairs(rig: Rig, crm: UnsignClient) -> None:
    with pytest.raises(ValidationError, match="type_code_or_biz_type"):
        crm.enqueue()
    assert rig.admin.xlen(rig.stream()) == 0


def test_a_producer_unknown_to_the_workers_is_told_how_to_be_added(rig: Rig) -> None:
    client = rig.client("crm")
    with pytest.raises(ConfigError, match="unsign-worker producer add crm") as caught:
        client.enqueue(customer_code="C00000000001")
    assert "unsign-worker acl --producer crm" in str(caught.value)
    assert rig.admin.exists(rig.stream()) == 0
    # once the operator adds it, the same client enqueues
    assert CliRunner().invoke(cli, ["producer", "add", "crm"], env={
        "UNSIGN_REDIS_URL": rig.url, "UNSIGN_KEY_PREFIX": rig.prefix}).exit_code == 0
    assert REQUEST_ID.fullmatch(client.enqueue(customer_code="C00000000001"))


@pytest.mark.parametrize("name", ["CRM", "", "crm:x", "a" * 33, "-crm", "crm*"])
def test_a_name_that_is_no_producer_name_is_refused(redis_url: str, name: str) -> None:
    with pytest.raises(ValueError, match="producer"):
        UnsignClient(redis_url, producer=name)


def test_the_client_repr_shows_no_url() -> None:
    client = UnsignClient("redis://crm:s3cret@127.0.0.1:6379/13", producer="crm")
    assert "s3cret" not in repr(client) and "crm" in repr(client)
    client.close()


# --- one entry per request ------------------------------------------------------------------


def test_enqueue_returns_a_request_id_and_adds_one_entry_holding_only_the_job(
        rig: Rig, crm: UnsignClient) -> None:
    crm.limits()  # the limits are read before: only the entry is new below
    before = rig.keys_now()
    request = crm.enqueue(biz_type="10004", user_email="li.wei@example.com",
                          reference="order-1")
    assert REQUEST_ID.fullmatch(request)
    [(entry_id, fields)] = rig.admin.xrange(rig.stream())
    assert entry_id.decode() == request
    assert list(fields) == [b"job"]
    assert json.loads(fields[b"job"]) == {"biz_type": "10004",
                                          "user_email": "li.wei@example.com",
                                          "reference": "order-1"}
    # nothing else was written: no record, no reference, no job id chosen by the client
    assert rig.keys_now() - before == {rig.stream().encode()}


def test_status_is_submitted_until_a_worker_takes_the_entry_then_follows_its_job(
        rig: Rig, crm: UnsignClient) -> None:
    # Given a request no worker has taken yet
    request = crm.enqueue(customer_code="C00000000001", reference="order-2")
    waiting = crm.status(request)
    assert waiting is not None
    assert (waiting.state, waiting.job_id, waiting.is_terminal) == ("submitted", "", False)
    # When the inbox takes it
    rig.take(1)
    # Then the request names its job, queued, and the job's own id gives the same status
    status = crm.status(request)
    assert status is not None and JOB_ID.fullmatch(status.job_id)
    assert (status.state, status.reference) == ("queued", "order-2")
    assert crm.status(status.job_id) == status
    assert crm.find("order-2") == status.job_id
    # And the job handed to the pool is that one, of this producer, with its parameters
    [job] = rig.handed
    assert (job.job_id, job.producer, job.params) == (status.job_id, "crm",
                                                      {"customer_code": "C00000000001"})
    assert rig.admin.hget(f"{rig.prefix}job:{job.job_id}", "producer") == b"crm"
    # And as the job moves on (a worker's state write, mirrored into the producer's view),
    # the request follows it
    rig.admin.hset(f"{rig.prefix}producer:crm:job:{job.job_id}", "state", "unsigned")
    assert crm.wait(request, timeout=5).state == "unsigned"


def test_the_status_never_holds_the_job_s_parameters(rig: Rig, crm: UnsignClient) -> None:
    request = crm.enqueue(biz_type="10004", user_email="li.wei@example.com")
    rig.take(1)
    status = crm.status(request)
    assert status is not None and status.state == "queued"
    assert not status.params_masked and status.as_dict()["params"] == {}
    view = rig.admin.hgetall(f"{rig.prefix}producer:crm:job:{status.job_id}")
    assert b"state" in view and b"params" not in view
    assert not any(b"li.wei" in value for value in view.values())


def test_an_unknown_request_is_none_and_wait_says_so(crm: UnsignClient) -> None:
    assert crm.status("1-1") is None
    assert crm.status("f" * 32) is None
    with pytest.raises(KeyError):
        crm.wait("1-1", timeout=0)
    with pytest.raises(ValueError, match="request id"):
        crm.status("../job:x")


def test_wait_times_out_on_a_request_no_worker_takes(crm: UnsignClient) -> None:
    request = crm.enqueue(customer_code="C00000000001")
    with pytest.raises(TimeoutError, match="still submitted"):
        crm.wait(request, timeout=0.3)


# --- references -----------------------------------------------------------------------------


def test_the_same_reference_and_parameters_resolve_to_the_same_job(
        rig: Rig, crm: UnsignClient) -> None:
    first = crm.enqueue(customer_code="C00000000001", reference="order-42")
    second = crm.enqueue(customer_code="C00000000001", reference="order-42")
    assert first != second  # two requests
    rig.take(2)
    one, two = crm.status(first), crm.status(second)
    assert one is not None and two is not None
    assert one.job_id == two.job_id == crm.find("order-42")
    assert [j.job_id for j in rig.handed] == [one.job_id]  # handed over once
    # a later retry of the application names it too
    third = crm.enqueue(customer_code="C00000000001", reference="order-42")
    rig.take(1)
    assert known(crm, third).job_id == one.job_id
    assert crm.conflicts("order-42") == []


def test_a_reference_bound_to_other_parameters_makes_a_job_rejected_reference_conflict(
        rig: Rig, crm: UnsignClient) -> None:
    first = crm.enqueue(customer_code="C00000000001", reference="order-44")
    rig.take(1)
    bound = crm.find("order-44")
    other = crm.enqueue(customer_code="C00000000002", reference="order-44")
    rig.take(1)
    refused = crm.wait(other, timeout=5)
    assert (refused.state, refused.code, refused.reference) == (
        "rejected", "REFERENCE_CONFLICT", "order-44")
    assert refused.job_id != bound and JOB_ID.fullmatch(refused.job_id)
    assert crm.conflicts("order-44") == [refused.job_id]
    assert crm.find("order-44") == bound
    assert known(crm, first).state == "queued"
    assert [j.job_id for j in rig.handed] == [bound]


def test_references_are_each_producer_s_own(rig: Rig, crm: UnsignClient) -> None:
    # Given two producers and the operator using the same reference for other agreements
    rig.registry.add("billing")
    billing = rig.client("billing")
    mine = crm.enqueue(customer_code="C00000000001", reference="order-42")
    theirs = billing.enqueue(customer_code="C00000000002", reference="order-42")
    with OperatorClient(broker_url=rig.url, key_prefix=rig.prefix) as operator:
        operators = operator.enqueue(customer_code="C00000000003", reference="order-42")
    rig.take(3)
    # Then each is its own job, none refused
    a, b = crm.status(mine), billing.status(theirs)
    assert a is not None and b is not None
    assert (a.state, b.state) == ("queued", "queued")
    assert len({a.job_id, b.job_id, operators}) == 3
    assert (crm.find("order-42"), billing.find("order-42")) == (a.job_id, b.job_id)
    assert crm.conflicts("order-42") == billing.conflicts("order-42") == []
    # And neither reads the other's job or request
    assert crm.status(b.job_id) is None and billing.status(a.job_id) is None
    assert crm.status(operators) is None
    # (a request id is an id of the producer's own stream: the other's never leads there)
    leaked = crm.status(theirs)
    assert leaked is None or leaked.job_id != b.job_id


# --- limits ---------------------------------------------------------------------------------


def test_a_full_backlog_raises_and_adds_nothing(rig: Rig) -> None:
    rig.registry.add("crm", max_pending=2)
    client = rig.client("crm")
    client.enqueue(customer_code="C00000000001")
    client.enqueue(customer_code="C00000000002")
    with pytest.raises(BacklogFullError, match="cap is 2"):
        client.enqueue(customer_code="C00000000003")
    assert rig.admin.xlen(rig.stream()) == 2
    # once the workers took the backlog, the producer enqueues again
    rig.take(2)
    assert REQUEST_ID.fullmatch(client.enqueue(customer_code="C00000000003"))


def test_an_entry_over_the_producer_s_size_limit_is_refused_at_the_caller(rig: Rig) -> None:
    rig.registry.add("crm", max_entry_bytes=256)
    client = rig.client("crm")
    with pytest.raises(ValidationError) as caught:
        client.enqueue(customer_code="C00000000001", reference="订" * 100)  # 300 bytes
    assert [(e.field, e.rule) for e in caught.value.errors] == [("job", "max_size")]
    assert rig.admin.exists(rig.stream()) == 0
    assert REQUEST_ID.fullmatch(client.enqueue(customer_code="C00000000001",
                                               reference="order-small"))


def test_an_entry_the_worker_refuses_unread_shows_rejected_entry_too_large(rig: Rig) -> None:
    # Given a producer whose own code skips the client's check (any language can XADD)
    rig.registry.add("crm", max_entry_bytes=256)
    client = rig.client("crm")
    big = {"job": json.dumps({"customer_code": "C00000000001", "reference": "r" * 300})}
    request = client.redis.xadd(rig.stream(), big).decode()
    assert known(client, request).state == "submitted"
    # When the inbox reads it
    rig.take(1)
    # Then it was never taken: rejected by request id, no job, nothing handed over
    refused = client.wait(request, timeout=5)
    assert (refused.state, refused.code, refused.job_id) == ("rejected", "ENTRY_TOO_LARGE", "")
    assert "256" in refused.reason
    assert rig.handed == [] and rig.admin.xlen(rig.stream()) == 0
    assert list(rig.admin.scan_iter(match=f"{rig.prefix}job:*")) == []
    assert rig.admin.hgetall(f"{rig.prefix}producers:rejected") == {b"crm:max_size": b"1"}


def test_entries_over_the_backlog_cap_written_anyway_show_rejected_backlog_full(
        rig: Rig) -> None:
    # Given a producer that floods its stream past its cap without asking the client
    rig.registry.add("crm", max_pending=2)
    client = rig.client("crm")
    requests = [client.redis.xadd(rig.stream(), {"customer_code": f"C{n:011d}"}).decode()
                for n in range(3)]
    rig.take(3)
    statuses = [known(client, r) for r in requests]
    refused = [s for s in statuses if s.state == "rejected"]
    assert [(s.code, s.job_id) for s in refused] == [("BACKLOG_FULL", "")]
    taken = [s for s in statuses if s.state == "queued"]
    assert len(taken) == 2
    assert sorted(j.job_id for j in rig.handed) == sorted(s.job_id for s in taken)


# --- as the producer's own Redis user -------------------------------------------------------


@dataclass
class AclRedis:
    server: RedisServer
    port: int
    prefix: str
    #: user name -> URL with its password
    urls: dict[str, str]


@pytest.fixture
def acl_redis(tmp_path: Path) -> Iterator[AclRedis]:
    """A private Redis whose users are exactly the lines ``unsign-worker acl --producer crm
    --producer billing`` prints, each given a password."""
    port = free_port()
    server = RedisServer(tmp_path, ["--port", str(port), "--requirepass", ADMIN_PASSWORD],
                         admin_url=f"redis://:{ADMIN_PASSWORD}@127.0.0.1:{port}/0")
    prefix = "acltest:"
    printed = CliRunner().invoke(cli, ["acl", "--prefix", prefix, "--producer", "crm",
                                       "--producer", "billing"])
    assert printed.exit_code == 0, printed.output
    urls = {}
    for line in printed.output.splitlines():
        if line.startswith("user "):
            _, name, *rules = line.split()
            server.admin.execute_command("ACL", "SETUSER", name, *rules, f">{name}-pw")
            urls[name] = f"redis://{name}:{name}-pw@127.0.0.1:{port}/0"
    assert {"unsign-worker", "unsign-producer-crm", "unsign-producer-billing"} <= set(urls)
    yield AclRedis(server=server, port=port, prefix=prefix, urls=urls)
    server.stop()


@needs_redis_server
def test_a_producer_with_only_its_printed_acl_rights_enqueues_and_follows_its_jobs(
        acl_redis: AclRedis) -> None:
    # Given the workers' side as the worker user, and producer crm as its own user
    worker = redis.Redis.from_url(acl_redis.urls["unsign-worker"])
    keys = Keys(acl_redis.prefix)
    app = producer_app(acl_redis.urls["unsign-worker"], acl_redis.prefix)
    rig = Rig(url=acl_redis.urls["unsign-producer-crm"], prefix=acl_redis.prefix, admin=worker,
              producer=Producer(app, worker, keys), registry=ProducerRegistry(worker, keys))
    try:
        rig.registry.add("crm")
        rig.registry.add("billing")
        crm = rig.client("crm")
        # When it enqueues, is taken, and enqueues a conflicting request
        request = crm.enqueue(biz_type="10004", user_email="li.wei@example.com",
                              reference="order-1")
        assert known(crm, request).state == "submitted"
        rig.take(1)
        status = crm.status(request)
        assert status is not None and status.state == "queued"
        other = crm.enqueue(customer_code="C00000000002", reference="order-1")
        rig.take(1)
        # Then every read of the client works within its rights
        assert crm.status(status.job_id) == status and not status.params_masked
        assert crm.find("order-1") == status.job_id
        refused = crm.wait(other, timeout=5)
        assert refused.code == "REFERENCE_CONFLICT"
        assert crm.conflicts("order-1") == [refused.job_id]
        assert crm.status("1-1") is None  # looks through its refused entries too
        # And none of the job's own record, nor the other producer's keys, is readable
        forbidden = [
            lambda: crm.redis.hgetall(f"{acl_redis.prefix}job:{status.job_id}"),
            lambda: crm.redis.hgetall(f"{acl_redis.prefix}producer:billing:job:x"),
            lambda: crm.redis.xadd(f"{acl_redis.prefix}inbox:billing", {"customer_code": "C1"}),
            lambda: crm.redis.set(f"{acl_redis.prefix}producer:crm:ref:order-1", "f" * 32),
        ]
        for n, attempt in enumerate(forbidden):
            with pytest.raises(redis.exceptions.NoPermissionError):
                attempt()
                pytest.fail(f"forbidden call {n} succeeded")
    finally:
        for client in rig.clients:
            client.close()
        app.close()
        worker.close()


# --- end to end: real workers over TLS ------------------------------------------------------

CLIENT_PROCESS = r"""
import json, os, sys
from unsign_worker.producers.client import UnsignClient
from unsign_worker.protocol.exceptions import ValidationError

url, prefix = os.environ["PRODUCER_REDIS_URL"], os.environ["UNSIGN_KEY_PREFIX"]
with UnsignClient(url, producer="crm", key_prefix=prefix) as client:
    try:
        client.enqueue(customer_code="much-too-long-customer-code")
        invalid = "accepted"
    except ValidationError as exc:
        invalid = str(exc)
    first = client.enqueue(customer_code="C00000000001", reference="app-1")
    again = client.enqueue(customer_code="C00000000001", reference="app-1")
    done = client.wait(first, timeout=90)
    done_again = client.wait(again, timeout=90)
    by_job = client.status(done.job_id)
forbidden = ("processor", "celery_app", "gateway", "context", "settings", "signing", "dedup",
             "sweeper", "breaker", "hooks", "attempt", "response", "celeryconfig", "inbox",
             "operator_client", "admission", "producer", "celery")
loaded = sorted(m for m in sys.modules if m.split(".")[-1] in forbidden
                and (m.startswith(("unsign_worker", "celery")) or m == "celeryconfig"))
print(json.dumps({"first": first, "again": again, "state": done.state, "job": done.job_id,
                  "job_again": done_again.job_id, "by_job": by_job.state, "loaded": loaded,
                  "invalid": invalid}))
"""


def run_application(env: OpsEnv, producer_url: str) -> dict[str, Any]:
    """The application: a separate process enqueuing as producer crm and waiting."""
    env.workers.extra["PRODUCER_REDIS_URL"] = producer_url
    done = env.python(CLIENT_PROCESS)
    assert done.returncode == 0, done.stderr + env.workers.log_tail()
    return json.loads(done.stdout.strip().splitlines()[-1])


def check_round_trip(env: OpsEnv, out: dict[str, Any]) -> None:
    assert out["loaded"] == []  # neither the worker's modules nor Celery (no broker)
    assert "customer_code" in out["invalid"] and "max_length" in out["invalid"]
    assert REQUEST_ID.fullmatch(out["first"]) and out["first"] != out["again"]
    assert (out["state"], out["by_job"]) == ("unsigned", "unsigned")
    assert out["job"] == out["job_again"] and JOB_ID.fullmatch(out["job"])
    assert env.workers.job(out["job"])["producer"] == "crm"
    assert env.stats()["unsigns"] == 1


@pytest.mark.slow
def test_an_application_enqueues_as_a_producer_and_a_real_worker_unsigns_over_tls(
        ops_env: Callable[..., OpsEnv]) -> None:
    # Given a worker against the gateway over TLS, and the producer added by the operator
    env = ops_env([Agreement(id="a1", customer_code="C00000000001")])
    assert env.emulator.url.startswith("https://")
    added = env.cli("producer", "add", "crm")
    assert added.exit_code == 0, added.output
    env.workers.start_worker()
    # When the application enqueues and waits; Then its job is unsigned, once
    check_round_trip(env, run_application(env, env.workers.redis_url))


@pytest.mark.slow
@needs_redis_server
def test_the_round_trip_works_with_each_side_holding_only_its_printed_acl_user(
        acl_redis: AclRedis, ops_env: Callable[..., OpsEnv]) -> None:
    env = ops_env([Agreement(id="a1", customer_code="C00000000001")])
    workers: WorkerEnv = env.workers
    workers.redis_url, workers.prefix = acl_redis.urls["unsign-worker"], acl_redis.prefix
    workers.__post_init__()
    operator = {**env.env, "UNSIGN_REDIS_URL": acl_redis.urls["unsign-operator"]}
    added = CliRunner().invoke(cli, ["producer", "add", "crm"], env=operator)
    assert added.exit_code == 0, added.output
    workers.start_worker()
    check_round_trip(env, run_application(env, acl_redis.urls["unsign-producer-crm"]))
