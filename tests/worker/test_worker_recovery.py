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


def test_a_batch_message_lost_between_the_broker_and_its_worker_is_done_within_two_leases(
        emulator_factory, worker_env_factory):
    # Given a campaign's batch messages, queued jobs checked as in production
    gw = emulator_factory([cae(f"a{i}", i) for i in range(1, 13)])
    env = worker_env_factory(gateway_url=gw.url, partner=PARTNER, key=KEY,
                             UNSIGN_VISIBILITY_TIMEOUT="3600", UNSIGN_LEASE=str(int(LEASE)))
    env.producer = Producer(env.app, env.redis, env.keys)
    # (a sweeper has run since Redis started: no restart check will look at every job at once)
    env.redis.set(env.keys.redis_run, str(env.redis.info("server")["run_id"]))
    ids = env.enqueue_many([{"customer_code": f"C{i:05d}"} for i in range(1, 13)],
                           batch_size=6)
    # When one of them is popped off the queue by a worker cut from Redis before it wrote the
    # message anywhere (BRPOP done, neither the broker's unacked hash nor P held written)
    assert env.redis.rpop(env.keys.queue()) is not None
    lost_at = time.monotonic()
    env.start_worker("w1", concurrency=4)
    # Then every job ends within two leases, each agreement unsigned once
    jobs = env.wait_terminal(ids, timeout=2 * LEASE)
    recovered_in = time.monotonic() - lost_at
    assert {j["state"] for j in jobs.values()} == {"unsigned"}, jobs
    assert all(gw.unsigns(f"a{i}") == 1 for i in range(1, 13))
    print(f"\nbatch message lost between the broker and its worker: every job terminal "
          f"{recovered_in:.1f}s after the loss (lease {LEASE:.0f}s)")
