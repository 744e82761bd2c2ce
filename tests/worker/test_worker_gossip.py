"""Workers run without gossip: a worker that comes back from a cut (here: stopped with SIGSTOP
for longer than Celery's drift limit, 16 s) reads the heartbeats the others sent meanwhile all
at once, and Celery's gossip took their age for a clock difference ("Substantial drift from ...
may mean clocks are out of sync") on hosts that share one clock."""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.plugins.emulator import KEY, PARTNER, cae
from tests.plugins.worker_fixtures import wait_for

pytestmark = pytest.mark.slow
#: Longer than celery.events.state.HEARTBEAT_DRIFT_MAX (16 s).
CUT_SECONDS = 20


def test_a_worker_back_from_a_cut_logs_no_clock_drift_warning(emulator_factory,
                                                                worker_env_factory):
    # Given two workers sending heartbeats
    gw = emulator_factory([cae("a1", 1)])
    env = worker_env_factory(gateway_url=gw.url, partner=PARTNER, key=KEY)
    other = env.start_worker("other")
    back = env.start_worker("back")
    # When one of them is frozen for longer than the drift limit, then resumes
    os.killpg(back.pid, signal.SIGSTOP)
    time.sleep(CUT_SECONDS)  # the fault itself: heartbeats of the other pile up meanwhile
    os.killpg(back.pid, signal.SIGCONT)
    resumed = time.time()
    wait_for(lambda: (env.redis.zscore(env.keys.workers, back.hostname) or 0) > resumed,
             timeout=60, what="the resumed worker's loops to run again")
    # and it alone takes the next job (its consumer has read everything pending by then)
    env.kill(other, signal.SIGTERM)
    [job_id] = env.enqueue_many([{"customer_code": "C00001"}])
    assert env.wait_terminal([job_id])[job_id]["state"] == "unsigned"
    # Then it never called that a clock difference
    log = env.log_tail("back", 2000)
    assert "Substantial drift" not in log and "clocks are out of sync" not in log, log
