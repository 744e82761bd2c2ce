"""A worker whose host clock is ten minutes ahead (libfaketime: Debian's ``faketime``, per
process) beside workers whose clocks are right: no job is taken over while its lease is live,
and none is stranded when the skewed worker dies mid-request. Real worker processes, real
Redis, the emulator over HTTP."""

from __future__ import annotations

import shutil
import signal
import time

import pytest

from tests.plugins.emulator import KEY, PARTNER, cae
from tests.plugins.worker_fixtures import wait_for
from unsign_worker.store.clock import server_now

pytestmark = pytest.mark.slow
LEASE = 30.0
#: the gateway's answer time while the leases must hold: shorter than the read timeout and the
#: lease
LATENCY_MS = 12_000
#: the command the skewed worker runs under: its wall clock ten minutes ahead (its monotonic
#: clock left alone, as on a real host; libfaketime's faked one stalls timed waits)
AHEAD = ["env", "FAKETIME_DONT_FAKE_MONOTONIC=1", "faketime", "-f", "+10m"]


def test_a_worker_ten_minutes_ahead_neither_takes_over_a_live_lease_nor_strands_its_own(
        emulator_factory, worker_env_factory):
    assert shutil.which("faketime"), "needs faketime (Debian package faketime: libfaketime)"
    first, second = range(1, 5), range(5, 11)
    gw = emulator_factory([cae(f"a{i}", i) for i in (*first, *second)])
    gw.faults(latency_ms=LATENCY_MS)
    env = worker_env_factory(gateway_url=gw.url, partner=PARTNER, key=KEY,
                             UNSIGN_LEASE=str(int(LEASE)), UNSIGN_READ_TIMEOUT="20",
                             UNSIGN_VISIBILITY_TIMEOUT="3600")
    # Given a worker whose clock is ten minutes ahead, sweeping but taking no jobs, and a
    # worker whose clock is right, each of its slots waiting for the gateway
    ahead = env.start_worker("ahead", concurrency=4, wrapper=AHEAD,
                             extra=["--queues", "unsign.hooks"])
    right = env.start_worker("right", concurrency=4)
    ids = env.enqueue_many([{"customer_code": f"C{i:05d}"} for i in first])
    wait_for(lambda: all(gw.requests(f"a{i}") for i in first), timeout=60,
             what="every request in flight")
    # When the worker ahead sweeps a few times (its heartbeat comes with each sweep)
    in_flight_at = server_now(env.redis)
    wait_for(lambda: (env.redis.zscore(env.keys.workers, ahead.hostname) or 0)
             > in_flight_at + 2, timeout=10, what="the worker ahead to sweep")
    # Then it took no live lease for expired: nothing re-published, the leases as claimed
    assert "re-published" not in env.log_tail("ahead", lines=1000)
    leases = [env.redis.zscore(env.keys.leases, j) for j in ids]
    assert all(lease is None or lease < in_flight_at + LEASE for lease in leases), leases
    # and every job ends, each agreement asked for once (a job taken over is sent again)
    jobs = env.wait_terminal(ids, timeout=120)
    assert {j["state"] for j in jobs.values()} == {"unsigned"}, jobs
    assert [gw.requests(f"a{i}") for i in first] == [1] * len(first)

    # Given the worker ahead alone, taking jobs, with requests in flight
    env.kill(right, signal.SIGTERM)
    env.kill(ahead, signal.SIGTERM)
    ahead = env.start_worker("ahead2", concurrency=4, wrapper=AHEAD)
    ids = env.enqueue_many([{"customer_code": f"C{i:05d}"} for i in second])
    wait_for(lambda: any(gw.requests(f"a{i}") for i in second), timeout=60,
             what="the worker ahead to send a request")
    # When it dies and a worker whose clock is right takes over
    env.kill(ahead, signal.SIGKILL)
    killed_at = time.monotonic()
    gw.faults()
    env.start_worker("right2", concurrency=4)
    # Then its jobs end within two leases of its death, not ten minutes later, each agreement
    # unsigned once
    jobs = env.wait_terminal(ids, timeout=2 * LEASE + 30)
    recovered_in = time.monotonic() - killed_at
    assert {j["state"] for j in jobs.values()} <= {"unsigned", "already_unsigned"}, jobs
    assert [gw.unsigns(f"a{i}") for i in second] == [1] * len(second)
    print(f"\nworker ten minutes ahead killed mid-request: every job terminal "
          f"{recovered_in:.1f}s after the kill (lease {LEASE:.0f}s)")
