"""A broker (its own Redis, no persistence) restarted mid-campaign loses every message it held:
the sweeper notices the broker's restart and re-publishes the queued jobs whose message is gone.
Real worker processes; the state store is the test's Redis."""

from __future__ import annotations

import signal
import time
import uuid

import pytest

from tests.plugins.emulator import KEY, PARTNER, cae
from tests.plugins.worker_fixtures import wait_for
from tests.private_redis import PrivateRedis, needs_redis_server
from unsign_worker.producers.producer import Producer, producer_app
from unsign_worker.store.job import Job

pytestmark = [pytest.mark.slow, needs_redis_server]
LEASE = 15.0
JOBS = 60


def test_jobs_whose_messages_a_broker_restart_lost_finish_within_two_leases(
        emulator_factory, worker_env_factory, tmp_path):
    broker = PrivateRedis(tmp_path / "broker", appendonly=False).start()
    try:
        gw = emulator_factory([cae(f"a{i}", i) for i in range(1, JOBS + 1)])
        gw.faults(latency_ms=300)
        env = worker_env_factory(gateway_url=gw.url, partner=PARTNER, key=KEY,
                                 UNSIGN_BROKER_URL=broker.url, UNSIGN_VISIBILITY_TIMEOUT="3600",
                                 UNSIGN_LEASE=str(int(LEASE)))
        app = producer_app(broker.url, env.prefix, visibility_timeout_seconds=3600)
        producer = Producer(app, env.redis, env.keys, queued_grace_seconds=3600)
        env.start_worker("w1", concurrency=2)
        jobs = [Job(job_id=uuid.uuid4().hex, params={"customer_code": f"C{i:05d}"})
                for i in range(1, JOBS + 1)]
        producer.enqueue(jobs, batch_size=5)
        wait_for(lambda: gw.state.stats.unsigns >= 10, timeout=120, what="campaign under way")
        # When the broker restarts with nothing kept: the queue and the unacked hash are gone
        broker.stop()
        broker.start()
        restarted = time.monotonic()
        assert broker.client().dbsize() == 0
        # Then every job ends within two leases, each agreement unsigned once
        done = env.wait_terminal([j.job_id for j in jobs], timeout=2 * LEASE + 60)
        recovered_in = time.monotonic() - restarted
        assert recovered_in <= 2 * LEASE, recovered_in
        assert {j["state"] for j in done.values()} <= {"unsigned", "already_unsigned"}
        assert all(gw.unsigns(f"a{i}") == 1 for i in range(1, JOBS + 1))
        assert gw.state.stats.duplicates == 0
        print(f"\nbroker restart: every job terminal {recovered_in:.1f}s after the restart")
        app.close()
    finally:
        for proc in list(env.procs) if "env" in locals() else []:
            env.kill(proc, signal.SIGKILL)
        broker.close()
