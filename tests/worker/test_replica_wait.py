"""UNSIGN_REPLICA_ACKS: claims and outcomes are on a replica before the gateway is called and
before a job ends; with no replica confirming, the claim is held and never sent. A private
master and replica (``redis-server --replicaof``)."""

from __future__ import annotations

import json
import logging
import threading
import uuid
from pathlib import Path

import pytest

from tests.plugins.emulator import KEY, PARTNER, cae
from tests.plugins.pki import gateway_settings
from tests.private_redis import PrivateRedis, needs_redis_server, wait_until
from unsign_worker.protocol.params import UnsignRequest
from unsign_worker.settings import Secret, Settings
from unsign_worker.store.keys import Keys
from unsign_worker.store.replication import Replication
from unsign_worker.worker import hooks
from unsign_worker.worker.context import build_context
from unsign_worker.worker.hooks import HookRunner, HookRunStatus
from unsign_worker.worker.processor import process_job
from unsign_worker.worker.settlement import DecisionKind

pytestmark = needs_redis_server


def waits(server: PrivateRedis) -> int:
    stats = server.client().info("commandstats").get("cmdstat_wait", {})
    return int(stats.get("calls", 0)) if isinstance(stats, dict) else 0


def context(server: PrivateRedis, gw, **extra):  # type: ignore[no-untyped-def]
    return build_context(Settings(
        partner=PARTNER, key=Secret(KEY), **gateway_settings(gw.url),
        redis_url=server.url, broker_url=server.url, key_prefix="rw:",
        visibility_timeout_seconds=600, **{"lease_seconds": 20, **extra}))


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


def test_without_a_replica_a_claim_is_held_and_never_sent(emulator_factory, master, caplog):
    """Acknowledged means replicated: no replica confirms the claim, so the gateway is never
    called (before, the worker logged a warning and sent it anyway)."""
    gw = emulator_factory([cae("a1", 1)])
    ctx = context(master, gw, replica_acks=1, replica_wait_ms=100, lease_seconds=4)
    with caplog.at_level(logging.WARNING):
        decision = process_job(ctx, {"job_id": uuid.uuid4().hex,
                                     "params": {"customer_code": "C00001"}})
    assert (decision.kind, decision.detail) == (
        DecisionKind.IGNORED, "claim not confirmed on a replica: not sent")
    assert gw.requests("a1") == 0
    assert any("holding 1 write(s)" in r.getMessage() for r in caplog.records)
    assert waits(master) > 2  # asked again while holding
    ctx.close()


@pytest.mark.slow
def test_a_held_claim_goes_on_once_a_replica_confirms_it(emulator_factory, master, tmp_path,
                                                         caplog):
    gw = emulator_factory([cae("a1", 1)])
    ctx = context(master, gw, replica_acks=1, replica_wait_ms=100, lease_seconds=60)
    replica = PrivateRedis(tmp_path / "replica", extra=["--replicaof", "127.0.0.1",
                                                         str(master.port)])
    holding = threading.Event()

    def start_replica_once_held() -> None:
        wait_until(lambda: any("holding" in r.getMessage() for r in caplog.records), 30,
                   "the claim to be held")
        holding.set()
        replica.start()

    starter = threading.Thread(target=start_replica_once_held, daemon=True)
    try:
        with caplog.at_level(logging.WARNING):
            starter.start()
            decision = process_job(ctx, {"job_id": uuid.uuid4().hex,
                                         "params": {"customer_code": "C00001"}})
        assert holding.is_set()
        assert decision.state == "unsigned"
        assert gw.unsigns("a1") == 1
    finally:
        starter.join(timeout=60)
        replica.close()
        ctx.close()


def test_no_wait_without_replica_acks(emulator_factory, master):
    gw = emulator_factory([cae("a1", 1)])
    ctx = context(master, gw)
    assert process_job(ctx, {"job_id": uuid.uuid4().hex,
                             "params": {"customer_code": "C00001"}}).state == "unsigned"
    assert waits(master) == 0
    ctx.close()


def test_a_hook_runs_only_once_its_record_is_on_a_replica(master, tmp_path, monkeypatch):
    """The merchant's step is not called while its record is unconfirmed; once a replica holds
    it, it runs and its done mark is confirmed too."""
    monkeypatch.setattr(hooks, "HOOK_LEASE_SECONDS", 4.0)  # holds for half of it
    keys, calls = Keys("rw:"), []
    client = master.client()
    client.hset(keys.hook("id1"), mapping={
        "state": "pending", "event": json.dumps({"idempotency_key": "unsign:id1"})})
    runner = HookRunner(client, keys, calls.append,
                        replication=Replication(client, keys, acks=1, wait_ms=100))
    assert runner.run("id1").status is HookRunStatus.SKIPPED
    assert calls == []
    replica = PrivateRedis(tmp_path / "replica", extra=["--replicaof", "127.0.0.1",
                                                         str(master.port)]).start()
    try:
        wait_until(lambda: replica.client().info("replication").get("master_link_status")
                   == "up", 30, "the replica to sync")
        client.hset(keys.hook("id1"), "lease_until", 0)  # the held run's lease, ended
        assert runner.run("id1").status is HookRunStatus.DONE
        assert calls == [{"idempotency_key": "unsign:id1"}]
        assert replica.client().hget(keys.hook("id1"), "state") == b"done"
    finally:
        replica.close()
