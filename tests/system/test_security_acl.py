"""The three Redis ACL roles (producer, worker, operator) against a real private
``redis-server``, and the workers' remote control limited to what Flower reads.

The producer may add to the inbox and read job and reference records; it cannot forge an
agreement as unsigned, open the breaker, delete the dead-letter queue, push to the broker's
queue, or send a Celery remote-control command. A worker and the operator commands work with
their own roles; and even a client with the control channel cannot stop a worker's consumption.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import CliRunner

from tests.plugins.emulator import KEY, PARTNER, cae
from tests.plugins.ports import free_port
from tests.plugins.worker_fixtures import WorkerEnv, wait_for
from tests.system.test_security_redis import ADMIN_PASSWORD, RedisServer, run_cli
from unsign_worker.cli.main import cli
from unsign_worker.producers.producer import producer_app
from unsign_worker.store.acl import ROLES, acl_file, rules
from unsign_worker.store.keys import Keys

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None,
                                reason="needs redis-server on PATH")

PREFIX = "unsign:"
PASSWORDS = {role: f"{role}-pw-NEVER-LOGGED" for role in ROLES}


@pytest.fixture
def roles_redis(tmp_path: Path) -> Iterator[tuple[RedisServer, dict[str, str]]]:
    """A private Redis whose users are the lines ``unsign-worker acl`` prints (plus a
    password each); returns the server and each role's URL."""
    port = free_port()
    server = RedisServer(tmp_path, ["--port", str(port), "--requirepass", ADMIN_PASSWORD],
                         admin_url=f"redis://:{ADMIN_PASSWORD}@127.0.0.1:{port}/0")
    printed = CliRunner().invoke(cli, ["acl", "--prefix", PREFIX])
    assert printed.exit_code == 0, printed.output
    for line in printed.output.splitlines():
        if line.startswith("user "):
            _, name, *parts = line.split()
            role = name.removeprefix("unsign-")
            server.admin.execute_command("ACL", "SETUSER", name, *parts,
                                         f">{PASSWORDS[role]}")
    urls = {role: f"redis://unsign-{role}:{PASSWORDS[role]}@127.0.0.1:{port}/0"
            for role in ROLES}
    yield server, urls
    server.stop()


def test_the_printed_acl_names_three_roles_and_refuses_a_glob_prefix() -> None:
    text = acl_file(PREFIX)
    assert [line.split()[1] for line in text.splitlines() if line.startswith("user ")] == [
        "unsign-producer", "unsign-worker", "unsign-operator"]
    users = [line.split() for line in text.splitlines() if line.startswith("user ")]
    assert not any(word.startswith((">", "#")) or word == "nopass"
                   for line in users for word in line)  # no password printed, none waived
    with pytest.raises(ValueError, match="glob"):
        rules("producer", "uns*ign:")


def test_a_producer_can_enqueue_and_read_but_forge_nothing(
        roles_redis: tuple[RedisServer, dict[str, str]]) -> None:
    server, urls = roles_redis
    keys = Keys(PREFIX)
    server.admin.set(keys.ref("order-1"), "job-1")
    server.admin.hset(keys.job("job-1"), mapping={"state": "queued", "params": "{}"})
    producer = redis.Redis.from_url(urls["producer"])
    # it can add a job to the inbox and follow its own job
    assert producer.xadd(keys.inbox, {"customer_code": "C00000000001", "reference": "order-1"})
    assert producer.get(keys.ref("order-1")) == b"job-1"
    assert producer.hgetall(keys.job("job-1"))[b"state"] == b"queued"
    assert producer.smembers(keys.conflicts("order-1")) == set()
    # it cannot forge an outcome, steer the worker's safety nets, or read others' entries
    forbidden = [
        lambda: producer.hset(keys.agreement("a" * 64), "state", "unsigned"),
        lambda: producer.hset(keys.job("job-1"), "state", "unsigned"),
        lambda: producer.hset(keys.breaker, "state", "open"),
        lambda: producer.delete(keys.dlq),
        lambda: producer.lpush(PREFIX + "unsign", "{}"),  # the broker's queue
        lambda: producer.xrange(keys.inbox),
        lambda: producer.publish(PREFIX + "/0.celery.pidbox", "{}"),
        lambda: producer.get("other-app:secret"),
    ]
    for n, attempt in enumerate(forbidden):
        with pytest.raises(redis.exceptions.NoPermissionError):
            attempt()
            pytest.fail(f"forbidden call {n} succeeded")


@pytest.mark.parametrize("command", ["cancel_consumer", "shutdown"])
def test_a_producer_cannot_send_remote_control(
        roles_redis: tuple[RedisServer, dict[str, str]], command: str) -> None:
    _, urls = roles_redis
    app = producer_app(urls["producer"], PREFIX)
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
        roles_redis: tuple[RedisServer, dict[str, str]], emulator_factory: Any,
        worker_env_factory: Any) -> None:
    server, urls = roles_redis
    gateway = emulator_factory([cae("a1", 1), cae("a2", 2)])
    env: WorkerEnv = worker_env_factory(gateway_url=gateway.url, partner=PARTNER, key=KEY)
    env.redis_url, env.prefix = urls["worker"], PREFIX
    env.__post_init__()
    worker = env.start_worker("w1", concurrency=2)
    producer = redis.Redis.from_url(urls["producer"])
    keys = Keys(PREFIX)

    def unsigned_through_the_inbox(reference: str, code: str) -> None:
        producer.xadd(keys.inbox, {"customer_code": code, "reference": reference})
        job_id = wait_for(lambda: producer.get(keys.ref(reference)), timeout=60,
                          what="the inbox to take the entry").decode()
        wait_for(lambda: producer.hget(keys.job(job_id), "state") == b"unsigned", timeout=60,
                 what=f"job {job_id} to be unsigned, as the producer reads it")

    # a producer enqueues through the inbox and reads the outcome (worker role for the worker)
    unsigned_through_the_inbox("order-1", "C00001")
    # the operator's commands work with the operator role
    operator_env = {**env.env, "UNSIGN_REDIS_URL": urls["operator"]}
    code, out = run_cli(operator_env, "status", "--json")
    assert code == 0 and json.loads(out)["outcomes"]["unsigned"] == 1, out
    # even the operator (who may use the control channel) cannot make the worker stop
    # consuming or shut down: its remote control obeys only Flower's reads
    app = producer_app(urls["operator"], PREFIX)
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
    unsigned_through_the_inbox("order-2", "C00002")
    assert gateway.unsigns("a1") == gateway.unsigns("a2") == 1
    assert "refused the remote-control command 'shutdown'" in env.log_tail(lines=100_000)
