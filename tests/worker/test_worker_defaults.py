"""``unsign-worker worker`` with no options: what a new user gets.

Given a gateway and the worker's environment, when the worker is started with no option at all,
then it runs one worker process per core, each with the gevent pool and 100 slots (the choice
docs/performance.md measures), and a job is unsigned; a SIGTERM to the command stops them all.
Given a --hostname and nothing else, the worker is that one process, the gevent pool put on its
command line by exec (so gevent patches sockets before anything imports them).
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import psutil
import pytest

from tests.plugins.emulator import KEY, PARTNER, cae
from tests.plugins.worker_fixtures import BIN, wait_for
from unsign_worker.worker.processes import default_processes

pytestmark = pytest.mark.slow


def _start(env, args: list[str]) -> subprocess.Popen[bytes]:
    with open(env.tmp / "w1.log", "ab") as log:
        proc = subprocess.Popen([str(BIN / "unsign-worker"), "worker", *args], env=env.env,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    env.procs.append(proc)
    return proc


def _cmdline(pid: int) -> list[bytes]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")


def test_no_options_one_gevent_process_per_core_each_100_slots(worker_env_factory,
                                                               emulator_factory):
    gw = emulator_factory([cae("a1", 1)])
    env = worker_env_factory(gateway_url=gw.url, partner=PARTNER, key=KEY)
    count = default_processes()
    proc = _start(env, [])
    wait_for(lambda: proc.poll() is not None or env.redis.zcard(env.keys.workers) >= count,
             timeout=90, what="the worker processes to come up")
    assert proc.poll() is None, env.log_tail("w1")
    names = sorted(m.decode().split("@")[0] for m in env.redis.zrange(env.keys.workers, 0, -1))
    assert names == [f"worker{i}" for i in range(1, count + 1)]
    log = env.log_tail("w1", lines=800)
    assert log.count("concurrency: 100 (gevent)") == count, log

    job_id = env.enqueue({"customer_code": "C00001"})
    assert env.wait_terminal([job_id])[job_id]["state"] == "unsigned"

    children = psutil.Process(proc.pid).children()
    assert len(children) == count
    os.kill(proc.pid, signal.SIGTERM)  # the supervisor only: it passes the signal on
    assert proc.wait(timeout=60) == 0
    wait_for(lambda: not any(c.is_running() and c.status() != psutil.STATUS_ZOMBIE
                             for c in children), timeout=30, what="every process to stop")


def test_a_named_worker_is_one_process_with_the_gevent_pool(worker_env_factory,
                                                            emulator_factory):
    gw = emulator_factory([cae("a1", 1)])
    env = worker_env_factory(gateway_url=gw.url, partner=PARTNER, key=KEY)
    proc = _start(env, ["--hostname", "solo@test"])
    wait_for(lambda: proc.poll() is not None or
             env.redis.zscore(env.keys.workers, "solo@test") is not None,
             timeout=60, what="the worker to come up")
    assert proc.poll() is None, env.log_tail("w1")
    assert "concurrency: 100 (gevent)" in env.log_tail("w1", lines=400)
    # the same process, now with the pool on its command line and one kept-alive gateway
    # connection per slot
    cmdline = _cmdline(proc.pid)
    assert cmdline[cmdline.index(b"--pool"):][:2] == [b"--pool", b"gevent"]
    environ = Path(f"/proc/{proc.pid}/environ").read_bytes().split(b"\0")
    assert b"UNSIGN_HTTP_POOL_SIZE=100" in environ
    assert psutil.Process(proc.pid).children() == []
    job_id = env.enqueue({"customer_code": "C00001"})
    assert env.wait_terminal([job_id])[job_id]["state"] == "unsigned"
