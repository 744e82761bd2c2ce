"""A SIGKILLed worker's prefetched batch messages do not stall a campaign: real worker
processes, real Redis, the emulator over HTTP, a broker visibility timeout of one hour."""

from __future__ import annotations

import signal
import time

import pytest

from tests.plugins.emulator import KEY, PARTNER, cae
from tests.plugins.worker_fixtures import wait_for
from unsign_worker.producers.producer import Producer

pytestmark = pytest.mark.slow
LEASE = 15.0


def test_jobs_of_messages_a_killed_worker_had_prefetched_finish_within_two_leases(
        emulator_factory, worker_env_factory):
    # Given one slot, prefetching four batch messages, and a slow gateway
    gw = emulator_factory([cae(f"a{i}", i) for i in range(1, 31)])
    gw.faults(latency_ms=500)
    env = worker_env_factory(gateway_url=gw.url, partner=PARTNER, key=KEY,
                             UNSIGN_VISIBILITY_TIMEOUT="3600", UNSIGN_LEASE=str(int(LEASE)))
    # queued jobs are checked only after an hour, as in production
    env.producer = Producer(env.app, env.redis, env.keys, queued_grace_seconds=3600)
    worker = env.start_worker("w1", concurrency=1)
    ids = env.enqueue_many([{"customer_code": f"C{i:05d}"} for i in range(1, 31)],
                           batch_size=6, campaign="")
    # When the worker is SIGKILLed while holding messages it has not started
    wait_for(lambda: env.redis.hlen(env.keys.unacked) >= 3 and gw.state.stats.unsigns >= 1,
             timeout=60, what="the worker to hold several messages")
    env.kill(worker, signal.SIGKILL)
    killed_at = time.monotonic()
    gw.faults()
    env.start_worker("w2", concurrency=4)
    # Then every job ends within two leases of the kill, each agreement unsigned once
    jobs = env.wait_terminal(ids, timeout=2 * LEASE + 30)
    recovered_in = time.monotonic() - killed_at
    assert recovered_in <= 2 * LEASE + 10, recovered_in
    assert {j["state"] for j in jobs.values()} <= {"unsigned", "already_unsigned"}, jobs
    assert all(gw.unsigns(f"a{i}") == 1 for i in range(1, 31))
    assert gw.state.stats.duplicates == 0
    print(f"\nprefetched batches of a killed worker: every job terminal {recovered_in:.1f}s "
          f"after the kill (lease {LEASE:.0f}s, visibility timeout 3600s)")
    # and the held messages' records are gone once everything is done
    wait_for(lambda: env.redis.zcard(env.keys.held) == 0, timeout=LEASE * 2,
             what="message leases released")
