"""A Redis that refuses writes for now (NOREPLICAS, READONLY, MASTERDOWN, LOADING) raises a
connection error: kombu's consumer reconnects and the outage loops wait, instead of Celery
calling it unrecoverable and the worker exiting for good."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
from kombu.transport.redis import Transport

from tests.private_redis import PrivateRedis, needs_redis_server
from unsign_worker.store import refusals
from unsign_worker.store.outage import OUTAGE_ERRORS
from unsign_worker.store.sentinel import connect


@pytest.mark.parametrize("answer", [
    "NOREPLICAS Not enough good replicas to write.",
    "READONLY You can't write against a read only replica.",
    "UNBLOCKED force unblock from blocking operation, instance state changed (master -> "
    "replica?)",
    "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
    "LOADING Redis is loading the dataset in memory"])
def test_a_refusal_is_a_connection_error_kombu_recovers_from(answer: str) -> None:
    refusals.install()
    error = redis.connection.Connection(port=1)._parser.parse_error(answer)
    assert isinstance(error, redis.ConnectionError)
    assert isinstance(error, Transport.connection_errors)
    assert isinstance(error, OUTAGE_ERRORS)


@needs_redis_server
def test_a_primary_without_its_replicas_refuses_with_a_connection_error(tmp_path: Path) -> None:
    server = PrivateRedis(tmp_path, extra=["--min-replicas-to-write", "1"]).start()
    try:
        client = connect(server.url, retry_on_error=[])
        with pytest.raises(refusals.NoReplicasError) as refused:
            client.set("k", "v")
        assert isinstance(refused.value, redis.ResponseError)  # a pipeline still reports it
        assert client.get("k") is None
    finally:
        server.close()
