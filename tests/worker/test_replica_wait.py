"""UNSIGN_REPLICA_ACKS: claims and outcomes are on a replica before the gateway is called and
before a job ends; with no replica left, writes stop waiting for a while instead of stalling.
A private master and replica (``redis-server --replicaof``)."""

from __future__ import annotations

import logging
import time
import uuid
from pathlib import Path

import pytest

from tests.plugins.emulator import KEY, PARTNER, cae
from tests.plugins.pki import gateway_settings
from tests.private_redis import PrivateRedis, needs_redis_server, wait_until
from unsign_worker.protocol.params import UnsignRequest
from unsign_worker.settings import Secret, Settings
from unsign_worker.worker.context import build_context
from unsign_worker.worker.processor import process_job

pytestmark = needs_redis_server


def waits(server: PrivateRedis) -> int:
    stats = server.client().info("commandstats").get("cmdstat_wait", {})
    return int(stats.get("calls", 0)) if isinstance(stats, dict) else 0


def context(server: PrivateRedis, gw, **extra):  # type: ignore[no-untyped-def]
    return build_context(Settings(
        partner=PARTNER, key=Secret(KEY), **gateway_settings(gw.url),
        redis_url=server.url, broker_url=server.url, key_prefix="rw:", lease_seconds=20,
        visibility_timeout_seconds=600, **extra))


@pytest.fixture
def master(tmp_path: Path):  # type: ignore[no-untyped-def]
    server = PrivateRedis(tmp_path / "master").start()
    yield server
    server.close()


@pytest.mark.slow
def test_claims_and_outcomes_reach_the_replica_before_the_job_ends(emulator_factory, master,
                                                                   tmp_path):
    replica = PrivateRedis(tmp_path / "replica", extra=["--replicaof", "127.0.0.1",
                                                         str(master.port)]).start()
    try:
        wait_until(lambda: replica.client().info("replication").get("master_link_status")
                   == "up", 30, "the replica to sync")
        gw = emulator_factory([cae(f"a{i}", i) for i in range(1, 4)])
        ctx = context(master, gw, replica_acks=1, replica_wait_ms=2000)
        for i in range(1, 4):
            decision = process_job(ctx, {"job_id": uuid.uuid4().hex,
                                         "params": {"customer_code": f"C{i:05d}"}})
            assert decision.state == "unsigned"
            identity = UnsignRequest(customer_code=f"C{i:05d}").identity(PARTNER).key
            # on the replica the moment the job ends: no polling
            assert replica.client().hget(ctx.keys.agreement(identity), "state") == b"unsigned"
        assert waits(master) >= 6  # the claim's flush and the settle's, for each job
        ctx.close()
    finally:
        replica.close()


def test_without_replicas_writes_stop_waiting_after_one_short_wait(emulator_factory, master,
                                                                  caplog):
    gw = emulator_factory([cae(f"a{i}", i) for i in range(1, 6)])
    ctx = context(master, gw, replica_acks=1, replica_wait_ms=300)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING):
        for i in range(1, 6):
            assert process_job(ctx, {"job_id": uuid.uuid4().hex, "params": {
                "customer_code": f"C{i:05d}"}}).state == "unsigned"
    assert waits(master) == 1
    assert time.monotonic() - started < 5 * 0.3 * 2 - 0.5  # not a full wait per write
    assert sum("replica(s) confirmed" in r.getMessage() for r in caplog.records) == 1
    ctx.close()


def test_no_wait_without_replica_acks(emulator_factory, master):
    gw = emulator_factory([cae("a1", 1)])
    ctx = context(master, gw)
    assert process_job(ctx, {"job_id": uuid.uuid4().hex,
                             "params": {"customer_code": "C00001"}}).state == "unsigned"
    assert waits(master) == 0
    ctx.close()
