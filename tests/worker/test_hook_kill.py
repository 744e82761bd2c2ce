"""A worker SIGKILLed while the merchant's success hook runs: the unsign is not repeated, and
the hook runs again (same idempotency key) once its lease has expired, to completion."""

from __future__ import annotations

import signal
import time
from collections import Counter

import pytest

from tests import paths
from tests.plugins.emulator import KEY, PARTNER, cae
from tests.plugins.worker_fixtures import wait_for

pytestmark = pytest.mark.slow
ROOT_DIR = str(paths.ROOT)
#: The hook lease of this test's workers (the product's is HOOK_LEASE_SECONDS, 120 s): long
#: enough for the 5 s hook on a busy machine, short enough not to wait two minutes for nothing.
HOOK_LEASE = 20.0


def test_a_hook_killed_mid_run_runs_again_to_completion_and_nothing_is_unsigned_twice(
        emulator_factory, worker_env_factory, tmp_path):
    gw = emulator_factory([cae(f"a{i}", i) for i in range(1, 4)])
    hooks_file = tmp_path / "hooks.txt"
    env = worker_env_factory(gateway_url=gw.url, partner=PARTNER, key=KEY,
                             UNSIGN_SUCCESS_HOOK="tests.hook_target:slow_file",
                             UNSIGN_TEST_HOOK_FILE=str(hooks_file),
                             UNSIGN_TEST_HOOK_SECONDS="5",
                             UNSIGN_TEST_HOOK_LEASE_SECONDS=str(HOOK_LEASE), PYTHONPATH=ROOT_DIR)
    worker = env.start_worker("w1", concurrency=4)
    ids = [env.enqueue({"customer_code": f"C{i:05d}"}) for i in range(1, 4)]

    def lines() -> list[str]:
        return hooks_file.read_text().splitlines() if hooks_file.exists() else []

    # When the worker is SIGKILLed while the merchant's steps are running
    wait_for(lambda: sum(line.startswith("start") for line in lines()) >= 3, timeout=60,
             what="the hooks to start")
    env.kill(worker, signal.SIGKILL)
    killed = time.monotonic()
    assert not any(line.startswith("done") for line in lines())
    env.start_worker("w2", concurrency=4)
    # Then every hook runs again and completes, once its lease has expired
    wait_for(lambda: sum(line.startswith("done") for line in lines()) >= 3,
             timeout=HOOK_LEASE + 90, interval=1, what="the hooks to complete")
    rerun_after = time.monotonic() - killed
    assert rerun_after >= HOOK_LEASE - 5, "a hook ran again before its lease expired"
    jobs = env.wait_terminal(ids, timeout=30)
    assert {j["state"] for j in jobs.values()} == {"unsigned"}
    assert all(gw.unsigns(f"a{i}") == 1 for i in range(1, 4))
    starts = Counter(line.split()[1] for line in lines() if line.startswith("start"))
    dones = Counter(line.split()[1] for line in lines() if line.startswith("done"))
    assert set(starts.values()) == {2} and set(dones.values()) == {1}, (starts, dones)
    wait_for(lambda: env.redis.zcard(env.keys.hooks) == 0, timeout=30, what="hooks settled")
    print(f"\nhook killed mid-run: re-run and completed {rerun_after:.0f}s after the kill "
          f"(hook lease {HOOK_LEASE:.0f}s); unsigns repeated 0")
