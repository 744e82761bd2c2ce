"""The Redis ACL users ``unsign-worker acl --producer crm --producer billing`` prints (the
worker, the operator, one user per producer) against a real private ``redis-server``, and the
workers' remote control limited to what Flower reads.

A producer adds entries to its own stream only, as :class:`UnsignClient` does, and reads the
state of its own jobs; it reads no job record (their parameters), no other producer's keys or
stream, writes nothing the workers trust (agreements, breaker, dead-letter queue, the broker's
queues, records, its own limits or views), runs no script, uses no Pub/Sub channel and so
sends no Celery remote-control command. A worker and the operator commands work with their own
users; and even a client with the control channel cannot stop a worker's consumption.

The attacks a hostile producer could try against another are played in
``tests/system/test_producer_attacks.py``.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.plugins.acl_users import AclRedis, assert_refused, printed_acl, start_acl_redis
from tests.plugins.emulator import KEY, PARTNER, cae
from tests.plugins.worker_fixtures import WorkerEnv, wait_for
from tests.private_redis import needs_redis_server
from tests.system.test_security_redis import run_cli
from unsign_worker.cli.main import cli
from unsign_worker.producers.client import UnsignClient
from unsign_worker.producers.producer import producer_app
from unsign_worker.store.keys import Keys

pytestmark = needs_redis_server

PREFIX = "unsign:"
PRODUCERS = ("crm", "billing")
KEYS = Keys(PREFIX)


@pytest.fixture
def roles_redis(tmp_path: Path) -> Iterator[AclRedis]:
    """A private Redis whose users are the lines ``unsign-worker acl --producer crm
    --producer billing`` prints (plus a password each); the two producers registered by the
    operator (``unsign-worker producer add``)."""
    acl = start_acl_redis(tmp_path, PREFIX, PRODUCERS)
    try:
        for name in PRODUCERS:
            code, out = run_cli(operator_env(acl), "producer", "add", name)
            assert code == 0, out
        yield acl
    finally:
        acl.stop()


def operator_env(acl: AclRedis) -> dict[str, str]:
    return {"UNSIGN_REDIS_URL": acl.url("operator"), "UNSIGN_KEY_PREFIX": PREFIX}


def test_the_printed_acl_names_the_worker_the_operator_and_each_producer() -> None:
    text = printed_acl(PREFIX, PRODUCERS)
    users = [line.split() for line in text.splitlines() if line.startswith("user ")]
    assert [line[1] for line in users] == [
        "unsign-worker", "unsign-operator", "unsign-producer-crm", "unsign-producer-billing"]
    assert not any(word.startswith((">", "#", "<", "!")) or word == "nopass"
                   for line in users for word in line)  # no password printed, none waived
    crm = next(line for line in users if line[1] == "unsign-producer-crm")
    # the producer's keys: its own stream (read and write), its own space (read only)
    assert [w for w in crm if w.startswith(("~", "%"))] == [
        "~unsign:inbox:crm", "%R~unsign:producer:crm:*"]
    assert "allchannels" not in crm and "+@all" not in crm


@pytest.mark.parametrize("args", [["--prefix", "uns*ign:"], ["--producer", "CRM"],
                                  ["--producer", "crm:*"], ["--producer", "a" * 33]])
def test_the_acl_command_refuses_a_glob_prefix_and_a_producer_name_that_breaks_its_rule(
        args: list[str]) -> None:
    result = CliRunner().invoke(cli, ["acl", *args], env={"UNSIGN_KEY_PREFIX": PREFIX})
    assert result.exit_code != 0
    assert "user " not in result.output


def test_a_producer_enqueues_through_its_own_stream_and_reads_its_own_request(
        roles_redis: AclRedis) -> None:
    acl = roles_redis
    with UnsignClient(acl.url("producer-crm"), producer="crm", key_prefix=PREFIX) as client:
        request = client.enqueue(customer_code="C00000000001", reference="order-1")
        status = client.status(request)
        assert status is not None and status.state == "submitted"  # no worker runs here
        assert client.find("order-1") is None and client.conflicts("order-1") == []
        assert client.limits() == (10_000, 16_384)
    # the entry is in crm's stream, and nowhere else
    entries = acl.admin.xrange(KEYS.inbox("crm"))
    assert [e[0].decode() for e in entries] == [request]
    assert json.loads(entries[0][1][b"job"]) == {"customer_code": "C00000000001",
                                                 "reference": "order-1"}
    assert acl.admin.xlen(KEYS.inbox("billing")) == 0
    assert not acl.admin.exists(KEYS.intake)


def test_a_producer_that_is_not_registered_is_told_so(roles_redis: AclRedis) -> None:
    code, out = run_cli(operator_env(roles_redis), "producer", "remove", "billing")
    assert code == 0, out
    with UnsignClient(roles_redis.url("producer-billing"), producer="billing",
                      key_prefix=PREFIX) as client:
        with pytest.raises(Exception, match="unsign-worker producer add billing"):
            client.enqueue(customer_code="C00000000001")
    assert roles_redis.admin.xlen(KEYS.inbox("billing")) == 0


def test_a_producer_reads_nothing_but_its_own_and_forges_nothing(roles_redis: AclRedis) -> None:
    acl = roles_redis
    admin = acl.admin
    # what the workers would have written: a job of billing's and one of the operator's
    admin.hset(KEYS.job("b" * 32), mapping={"state": "queued", "producer": "billing",
                                            "params": '{"customer_code": "C00000000002"}'})
    admin.hset(KEYS.producer_job("billing", "b" * 32), mapping={"state": "queued"})
    admin.set(KEYS.producer_ref("billing", "order-1"), "b" * 32)
    admin.hset(KEYS.job("c" * 32), mapping={"state": "queued", "params": "{}"})
    admin.set(KEYS.ref("order-9"), "c" * 32)
    admin.hset(KEYS.job("a" * 32), mapping={"state": "queued", "producer": "crm",
                                            "params": '{"customer_code": "C00000000001"}'})
    admin.hset(KEYS.producer_job("crm", "a" * 32), mapping={"state": "queued"})
    crm = acl.client("producer-crm")
    # its own view is readable (state only), its own stream writable
    assert crm.hgetall(KEYS.producer_job("crm", "a" * 32)) == {b"state": b"queued"}
    assert crm.xadd(KEYS.inbox("crm"), {"job": '{"customer_code": "C00000000001"}'})
    assert crm.hget(KEYS.producer_settings("crm"), "max_pending") == b"10000"
    assert_refused({
        # reading job records (their parameters) or the operator's keys
        "HGETALL own job record": lambda: crm.hgetall(KEYS.job("a" * 32)),
        "HGET other job params": lambda: crm.hget(KEYS.job("b" * 32), "params"),
        "GET job": lambda: crm.get(KEYS.job("c" * 32)),
        "GET operator ref": lambda: crm.get(KEYS.ref("order-9")),
        "XRANGE intake": lambda: crm.xrange(KEYS.intake),
        "XRANGE audit": lambda: crm.xrange(PREFIX + "audit"),
        # reading another producer's keys and stream
        "HGETALL billing view": lambda: crm.hgetall(KEYS.producer_job("billing", "b" * 32)),
        "GET billing ref": lambda: crm.get(KEYS.producer_ref("billing", "order-1")),
        "HGETALL billing settings": lambda: crm.hgetall(KEYS.producer_settings("billing")),
        "XRANGE billing stream": lambda: crm.xrange(KEYS.inbox("billing")),
        "XLEN billing stream": lambda: crm.xlen(KEYS.inbox("billing")),
        "SCAN": lambda: crm.scan(0),
        "KEYS": lambda: crm.keys("*"),
        # writing what the workers trust
        "HSET agreement": lambda: crm.hset(KEYS.agreement("a" * 64), "state", "unsigned"),
        "HSET breaker": lambda: crm.hset(KEYS.breaker, "state", "open"),
        "DEL dlq": lambda: crm.delete(KEYS.dlq),
        "ZADD dlq": lambda: crm.zadd(KEYS.dlq, {"a" * 32: 1}),
        "LPUSH queue": lambda: crm.lpush(KEYS.queue(), "{}"),
        "HSET job record": lambda: crm.hset(KEYS.job("a" * 32), "state", "unsigned"),
        "XADD intake": lambda: crm.xadd(KEYS.intake, {"job": "{}"}),
        "HSET producers": lambda: crm.hset(KEYS.producers, "crm", "{}"),
        "HSET own settings": lambda: crm.hset(KEYS.producer_settings("crm"),
                                              "max_entry_bytes", "1048576"),
        "HSET own view": lambda: crm.hset(KEYS.producer_job("crm", "a" * 32),
                                          "state", "unsigned"),
        "SET own ref": lambda: crm.set(KEYS.producer_ref("crm", "order-2"), "b" * 32),
        "SET own entry binding": lambda: crm.set(KEYS.producer_entry("crm", "1-1"), "b" * 32),
        "DEL own stream": lambda: crm.delete(KEYS.inbox("crm")),
        # another producer's stream
        "XADD billing stream": lambda: crm.xadd(KEYS.inbox("billing"), {"job": "{}"}),
        "XADD billing MAXLEN 0": lambda: crm.xadd(KEYS.inbox("billing"), {"job": "{}"},
                                                  maxlen=0),
        # scripts, functions, Pub/Sub, keys outside the prefix
        "EVAL": lambda: crm.eval("return 1", 0),
        "EVAL reading a record": lambda: crm.eval("return redis.call('HGETALL', KEYS[1])", 1,
                                                  KEYS.job("b" * 32)),
        "FCALL": lambda: crm.fcall("unsign_claim", 0),
        "PUBLISH": lambda: crm.publish(PREFIX + "/0.celery.pidbox", "{}"),
        "SUBSCRIBE": lambda: crm.execute_command("SUBSCRIBE", "celeryev"),
        "GET other app": lambda: crm.get("other-app:secret"),
    })
    # nothing was changed by the refused attempts
    assert admin.hget(KEYS.job("a" * 32), "state") == b"queued"
    assert admin.xlen(KEYS.inbox("billing")) == 0 and admin.xlen(KEYS.inbox("crm")) == 1
    assert admin.hget(KEYS.producer_settings("crm"), "max_entry_bytes") == b"16384"


@pytest.mark.parametrize("command", ["cancel_consumer", "shutdown"])
def test_a_producer_cannot_send_remote_control(roles_redis: AclRedis, command: str) -> None:
    app = producer_app(roles_redis.url("producer-crm"), PREFIX)
    app.conf.broker_connection_retry = False
    app.conf.broker_connection_max_retries = 0
    try:
        with pytest.raises(Exception) as caught:
            args = {"queue": "unsign"} if command == "cancel_consumer" else {}
            app.control.broadcast(command, arguments=args, reply=False)
        assert "NOPERM" in repr(caught.value) or "permission" in repr(caught.value).lower()
    finally:
        app.close()


@pytest.mark.slow
def test_each_role_does_its_part_and_a_control_command_cannot_stop_a_worker(
        roles_redis: AclRedis, emulator_factory: Any, worker_env_factory: Any) -> None:
    acl = roles_redis
    gateway = emulator_factory([cae("a1", 1), cae("a2", 2), cae("b1", 3), cae("b2", 4)])
    env: WorkerEnv = worker_env_factory(gateway_url=gateway.url, partner=PARTNER, key=KEY)
    env.redis_url, env.prefix = acl.url("worker"), PREFIX
    env.__post_init__()
    worker = env.start_worker("w1", concurrency=2)
    crm = UnsignClient(acl.url("producer-crm"), producer="crm", key_prefix=PREFIX)
    billing = UnsignClient(acl.url("producer-billing"), producer="billing", key_prefix=PREFIX)

    def unsigned(client: UnsignClient, reference: str, code: str) -> str:
        request = client.enqueue(customer_code=code, reference=reference)
        status = client.wait(request, timeout=90)
        assert status.state == "unsigned", (status, env.log_tail())
        assert client.find(reference) == status.job_id
        return status.job_id

    try:
        # each producer enqueues through its own stream (the worker with the worker's user)
        # and reads its own outcome
        crm_job = unsigned(crm, "order-1", "C00001")
        billing_job = unsigned(billing, "order-1", "C00003")
        assert crm_job != billing_job  # the same reference, two producers: two jobs
        # another language: redis-cli as billing's user adds an entry, then finds its job's
        # state through the entry's binding, in billing's own keys only
        cli_ = ["redis-cli", "--no-auth-warning", "-u", acl.url("producer-billing")]
        entry_id = subprocess.run(
            [*cli_, "XADD", KEYS.inbox("billing"), "*", "job",
             '{"customer_code": "C00004", "reference": "order-9"}'],
            check=True, capture_output=True, text=True).stdout.strip()
        bound = wait_for(lambda: subprocess.run(
            [*cli_, "GET", f"{PREFIX}producer:billing:entry:{entry_id}"], check=True,
            capture_output=True, text=True).stdout.strip(), timeout=90, what="the entry's job")

        def view() -> dict[str, str]:
            flat = subprocess.run([*cli_, "HGETALL", f"{PREFIX}producer:billing:job:{bound}"],
                                  check=True, capture_output=True, text=True).stdout.split("\n")
            return dict(zip(flat[::2], flat[1::2], strict=False))

        wait_for(lambda: view().get("state") == "unsigned", timeout=90,
                 what="the job to end, as redis-cli reads it")
        assert "params" not in view() and view()["reference"] == "order-9"
        # neither reads the other's job, nor its own job's record
        for client, other in ((crm, billing_job), (billing, crm_job)):
            assert client.status(other) is None
            assert_refused({"record": lambda c=client, j=other: c.redis.hgetall(KEYS.job(j))})
        # the operator's commands work with the operator's user
        code, out = run_cli({**env.env, "UNSIGN_REDIS_URL": acl.url("operator")}, "status",
                            "--json")
        assert code == 0 and json.loads(out)["outcomes"]["unsigned"] == 3, out
        code, out = run_cli(operator_env(acl), "producer", "list", "--json")
        assert code == 0, out
        assert [p["name"] for p in json.loads(out)["producers"]] == ["billing", "crm"]
        # even the operator (who may use the control channel) cannot make the worker stop
        # consuming or shut down: its remote control obeys only Flower's reads
        app = producer_app(acl.url("operator"), PREFIX)
        try:
            dest = [worker.hostname]
            for command, args in (("cancel_consumer", {"queue": "unsign"}), ("shutdown", {})):
                replies = app.control.broadcast(command, arguments=args, destination=dest,
                                                reply=True, timeout=5)
                assert replies and "error" in replies[0][worker.hostname], replies
            assert app.control.inspect(destination=dest, timeout=5).ping()
        finally:
            app.close()
        assert worker.poll() is None
        unsigned(crm, "order-2", "C00002")
        assert gateway.unsigns("a1") == gateway.unsigns("a2") == gateway.unsigns("b1") == 1
        assert gateway.unsigns("b2") == 1
        assert "refused the remote-control command 'shutdown'" in env.log_tail(lines=100_000)
    finally:
        crm.close()
        billing.close()
        env.stop_all()
