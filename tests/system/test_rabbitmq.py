"""RabbitMQ as the broker (quorum queues) while Redis keeps the job state and dedup keys.

Uses the RabbitMQ at ``UNSIGN_TEST_AMQP_URL`` (default ``amqp://guest:guest@127.0.0.1:5672//``)
and is skipped, saying why, where none answers. AMQP has no key prefix, so the test owns the
project's queue names on that broker for its duration: it deletes them before and after.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from kombu import Connection

import celeryconfig
from tests.plugins.emulator import Emulator
from tests.plugins.worker_fixtures import WorkerEnv
from unsign_worker.emulator.agreements import Agreement
from unsign_worker.producers.producer import Producer, producer_app
from unsign_worker.store.job import Job
from unsign_worker.store.keys import HOOK_QUEUE, QUEUE

pytest_plugins = ["tests.plugins.worker_fixtures"]

AMQP_URL = os.environ.get("UNSIGN_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")
PARTNER = "2088101568338364"
KEY = "rabbittestkey0123456789abcdefghi"


def _reachable(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5672),
                                      timeout=2):
            return True
    except OSError:
        return False


def _delete_queues() -> None:
    with Connection(AMQP_URL, connect_timeout=5) as conn:
        channel = conn.channel()
        for name in (QUEUE, HOOK_QUEUE):
            channel.queue_delete(name)
            channel.exchange_delete(name)


@pytest.fixture
def rabbitmq() -> Iterator[str]:
    if not _reachable(AMQP_URL):
        pytest.skip(f"no RabbitMQ answers at {urlsplit(AMQP_URL).hostname}:"
                    f"{urlsplit(AMQP_URL).port or 5672} (set UNSIGN_TEST_AMQP_URL to use one)")
    _delete_queues()
    yield AMQP_URL
    _delete_queues()


def test_amqp_brokers_get_quorum_queues_and_no_redis_only_options() -> None:
    from unsign_worker.settings import Settings

    amqp = celeryconfig.config_for(Settings(broker_url=AMQP_URL))
    redis = celeryconfig.config_for(Settings())
    assert amqp["task_default_queue_type"] == "quorum"
    assert amqp["task_create_missing_queue_type"] == "quorum"
    # native delayed delivery (countdown retries on quorum queues) needs topic exchanges
    assert amqp["task_default_exchange_type"] == "topic"
    assert amqp["task_create_missing_queue_exchange_type"] == "topic"
    assert "global_keyprefix" not in amqp["broker_transport_options"]
    assert amqp["broker_transport_options"]["confirm_publish"] is True
    assert redis["broker_transport_options"]["global_keyprefix"] == "unsign:"
    assert "task_default_queue_type" not in redis


@pytest.mark.slow
def test_a_worker_on_rabbitmq_completes_jobs_and_keeps_state_in_redis(
        rabbitmq: str, worker_env_factory: Any) -> None:
    # Given a worker whose broker is RabbitMQ and whose store is the test's Redis prefix
    emulator = Emulator([Agreement(id="r1", customer_code="RMQ-1"),
                         Agreement(id="r2", customer_code="RMQ-2", script=("HTTP_503",) * 8),
                         *(Agreement(id=f"rb{i}", customer_code=f"RMQ-B{i}") for i in range(3))],
                        partner=PARTNER, key=KEY).start()
    try:
        env: WorkerEnv = worker_env_factory(gateway_url=emulator.url, partner=PARTNER, key=KEY,
                                            UNSIGN_BROKER_URL=rabbitmq,
                                            # RabbitMQ's delayed delivery counts whole seconds
                                            UNSIGN_RETRY_COUNTDOWN_BASE="2")
        env.start_worker("rmq", concurrency=4)
        # (the producers' own app, as the client and the campaign command build it)
        env.producer = Producer(producer_app(rabbitmq, env.prefix), env.redis, env.keys)

        # When a job is sent, another that needs a broker retry with a countdown, and a batch
        ids = [env.enqueue({"customer_code": "RMQ-1"}), env.enqueue({"customer_code": "RMQ-2"})]
        batch = [Job(job_id=uuid.uuid4().hex, params={"customer_code": f"RMQ-B{i}"})
                 for i in range(3)]
        env.producer.enqueue(batch, batch_size=3)

        # Then all are done, and the broker's queues never touched Redis
        jobs = env.wait_terminal(ids + [j.job_id for j in batch], timeout=120)
        assert [jobs[i]["state"] for i in ids] == ["unsigned", "unsigned"]
        assert [jobs[j.job_id]["state"] for j in batch] == ["unsigned"] * 3
        assert int(jobs[ids[1]]["attempts"]) > 1
        log = env.log_tail("rmq", 200)
        assert "retry: Retry in" in log and "native delayed delivery" not in log, log
        assert not env.redis.exists(env.keys.queue(QUEUE))
        with Connection(rabbitmq) as conn:
            declared = conn.default_channel.queue_declare(QUEUE, passive=True)
        assert declared.message_count == 0
    finally:
        emulator.close()
