"""Redis SIGKILLed mid-campaign and started again from its append-only file, with
``appendfsync always`` and ``everysec``: what is lost, what is repeated, how long it takes.
Real worker processes, the emulator over HTTP, a private Redis."""

from __future__ import annotations

import signal
import time
from collections import Counter

import pytest

from tests import paths
from tests.plugins.emulator import KEY, PARTNER, cae
from tests.plugins.worker_fixtures import wait_for
from tests.private_redis import PrivateRedis, needs_redis_server
from unsign_worker.producers.producer import Producer

pytestmark = [pytest.mark.slow, needs_redis_server]
ROOT_DIR = str(paths.ROOT)
LEASE = 15.0
JOBS = 120
#: longer than redis-py's own quick retries, so in-flight work meets the outage
DOWN_SECONDS = 12


@pytest.mark.parametrize("appendfsync", ["always", "everysec"])
def test_a_redis_sigkill_loses_no_job_and_unsigns_nothing_twice(
        emulator_factory, worker_env_factory, tmp_path, appendfsync):
    server = PrivateRedis(tmp_path / "redis", appendfsync=appendfsync).start()
    try:
        gw = emulator_factory([cae(f"a{i}", i) for i in range(1, JOBS + 1)])
        gw.faults(latency_ms=100)
        hooks_file = tmp_path / "hooks.txt"
        env = worker_env_factory(gateway_url=gw.url, partner=PARTNER, key=KEY,
                                 UNSIGN_VISIBILITY_TIMEOUT="3600", UNSIGN_LEASE=str(int(LEASE)),
                                 UNSIGN_SUCCESS_HOOK="tests.hook_target:record_file",
                                 UNSIGN_TEST_HOOK_FILE=str(hooks_file), PYTHONPATH=ROOT_DIR)
        env.redis_url = server.url
        env.__post_init__()
        env.producer = Producer(env.app, env.redis, env.keys, queued_grace_seconds=3600)
        env.start_worker("w1", concurrency=4)
        env.start_worker("w2", concurrency=4)
        ids = env.enqueue_many([{"customer_code": f"C{i:05d}"} for i in range(1, JOBS + 1)],
                               batch_size=10)
        wait_for(lambda: gw.state.stats.unsigns >= JOBS // 3, timeout=120,
                 what="campaign under way")
        # When Redis is SIGKILLed and started again from what its append-only file kept
        server.kill()
        down = time.monotonic()
        wait_for(lambda: time.monotonic() - down >= DOWN_SECONDS, timeout=DOWN_SECONDS + 5,
                 interval=0.2, what="the outage to last")
        server.start()
        restarted = time.monotonic()
        # Then no job is lost, every job ends, no agreement is unsigned twice
        jobs = env.wait_terminal(ids, timeout=2 * LEASE + 90)
        recovered_in = time.monotonic() - restarted
        outcomes = Counter(j.get("state", "lost") for j in jobs.values())
        assert set(outcomes) <= {"unsigned", "already_unsigned"}, outcomes
        assert all(gw.unsigns(f"a{i}") == 1 for i in range(1, JOBS + 1))
        assert gw.state.stats.duplicates == 0
        calls = Counter(line.split()[0] for line in hooks_file.read_text().splitlines())
        assert len(calls) == JOBS
        repeated = sum(1 for n in calls.values() if n > 1)
        if appendfsync == "always":  # nothing acknowledged is lost: no hook runs twice
            assert repeated == 0, calls
        assert recovered_in <= 2 * LEASE + 30, recovered_in
        print(f"\nredis SIGKILL (appendfsync {appendfsync}, down {DOWN_SECONDS}s): jobs lost 0, "
              f"{dict(outcomes)}, agreements unsigned twice 0, hooks repeated {repeated}, "
              f"every job terminal {recovered_in:.1f}s after the restart")
    finally:
        for proc in list(env.procs) if "env" in locals() else []:
            env.kill(proc, signal.SIGKILL)
        server.close()
