"""Faults the worker must survive: real worker processes, real Redis, the emulator over HTTP."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from tests import paths
from tests.hook_target import calls
from tests.plugins.emulator import KEY, PARTNER, cae, partner_protocol
from tests.plugins.ports import free_port
from tests.plugins.worker_fixtures import wait_for
from unsign_worker.store.states import TERMINAL_STATES

pytestmark = pytest.mark.slow
ROOT = paths.ROOT


def hooked(env_factory, gw, key_prefix, hook="record", **extra):
    return env_factory(gateway_url=gw.url, partner=PARTNER, key=KEY,
                       UNSIGN_SUCCESS_HOOK=f"tests.hook_target:{hook}",
                       UNSIGN_TEST_HOOK_LIST=f"{key_prefix}hookcalls",
                       PYTHONPATH=str(ROOT), **extra)


@pytest.mark.parametrize(("step", "batch_size", "pool"), [
    ("OK", 0, "threads"), ("LOST_ANSWER", 0, "threads"), ("LOST_ANSWER", 10, "threads"),
    ("LOST_ANSWER", 10, "gevent")])
def test_a_worker_killed_mid_request_unsigns_exactly_once_and_runs_the_hook_once(
        emulator_factory, worker_env_factory, key_prefix, redis_client, step, batch_size, pool):
    # Given a gateway that holds each request for 3 s (and, for LOST_ANSWER, drops the answer)
    gw = emulator_factory([cae("a1", 1, script=(step,)), partner_protocol("p1", 2,
                                                                          script=(step,))])
    gw.faults(latency_ms=3000)
    env = hooked(worker_env_factory, gw, key_prefix)
    worker = env.start_worker("w1", pool=pool)
    ids = env.enqueue_many([{"customer_code": "C00001"},
                            {"biz_type": "10004", "user_email": "user2@example.com"}],
                           batch_size=batch_size)
    # When the worker is SIGKILLed while both requests are in flight at the gateway
    wait_for(lambda: gw.state.in_flight >= (1 if batch_size else 2), timeout=60,
             what="requests in flight")
    env.kill(worker, signal.SIGKILL)
    gw.faults()  # the gateway answers promptly from now on
    env.start_worker("w2", pool=pool)
    # Then both jobs end, each agreement was unsigned exactly once, and the hook ran once each
    jobs = env.wait_terminal(ids, timeout=120)
    assert {j["state"] for j in jobs.values()} <= {"unsigned", "already_unsigned"}, jobs
    assert gw.unsigns("a1") == 1 and gw.unsigns("p1") == 1
    assert gw.state.stats.duplicates == 0
    hook_calls = wait_for(lambda: len(calls(redis_client, f"{key_prefix}hookcalls")) >= 2 and
                          calls(redis_client, f"{key_prefix}hookcalls"), timeout=60,
                          what="hooks")
    time.sleep(0)  # no fixed waits: the count below is checked after the sweeper's next passes
    wait_for(lambda: redis_client.zcard(env.keys.hooks) == 0, timeout=30, what="hooks settled")
    assert sorted(calls(redis_client, f"{key_prefix}hookcalls")) == sorted(set(hook_calls))
    assert len(set(hook_calls)) == 2


@pytest.mark.parametrize("batch_size", [0, 7])
def test_the_same_job_twice_and_one_agreement_in_two_jobs_unsign_once(
        emulator_factory, worker_env_factory, batch_size):
    gw = emulator_factory([cae(f"a{i}", i) for i in range(1, 11)])
    gw.faults(latency_ms=200)
    env = worker_env_factory(gateway_url=gw.url, partner=PARTNER, key=KEY)
    env.start_worker("w1", concurrency=8)
    env.start_worker("w2", concurrency=8)
    ids: list[str] = []
    for i in range(1, 11):
        params = {"customer_code": f"C{i:05d}"}
        same = env.enqueue(params)
        env.enqueue(params, job_id=same)  # the same job twice
        ids.append(same)
    # the same agreements again in other jobs (as campaign batches when batch_size is set)
    ids += env.enqueue_many([{"customer_code": f"C{i:05d}"} for i in range(1, 11)] +
                            [{"type_code": "BUSI0031", "trans_account_out": f"2088{i:012d}0156"}
                             for i in range(1, 11)], batch_size=batch_size)
    jobs = env.wait_terminal(ids)
    for i in range(1, 11):
        assert gw.unsigns(f"a{i}") == 1
    # per agreement exactly one job reports the unsign; every other one is a duplicate (same
    # identity) or, for the pair form that names the agreement differently, the gateway's own
    # STATUS_CUSTOMER_SIGN: the worker never reports success twice
    per_agreement: dict[int, list[dict[str, str]]] = {}
    for j in jobs.values():
        params = json.loads(j["params"])
        n = int(params.get("customer_code", "C0")[1:] or 0) or int(
            params["trans_account_out"][4:16])
        per_agreement.setdefault(n, []).append(j)
    assert sorted(per_agreement) == list(range(1, 11))
    # (a job whose first answer was lost or late reports the same unsign as already_unsigned)
    for group in per_agreement.values():
        states = sorted(j["state"] for j in group)
        assert states.count("unsigned") + states.count("already_unsigned") == 1, states
        for j in group:
            assert j["state"] in ("unsigned", "already_unsigned", "duplicate") or j.get(
                "code") == "STATUS_CUSTOMER_SIGN", j


def test_jobs_wait_out_a_gateway_outage_and_all_complete(emulator_factory, worker_env_factory):
    # Given a worker whose gateway is down (connection refused)
    port = free_port()
    gw = emulator_factory([cae(f"a{i}", i) for i in range(1, 21)], port=port, start=False)
    env = worker_env_factory(gateway_url=gw.url, partner=PARTNER, key=KEY)
    env.start_worker("w1")
    ids = [env.enqueue({"customer_code": f"C{i:05d}"}) for i in range(1, 21)]
    # (the first jobs fail; then the worker finds the gateway unreachable and takes no job,
    # the others wait in the broker)
    wait_for(lambda: any(env.job(j).get("first_failure_at") for j in ids), timeout=60,
             what="jobs to have failed and be retrying")
    wait_for(lambda: "unreachable from this worker" in env.log_tail("w1", 400), timeout=60,
             what="the worker to stop taking jobs")
    assert not any(env.job(j).get("state") in TERMINAL_STATES for j in ids)
    # When it comes back answering 503 for a while, then heals
    gw.start()
    gw.faults(http_error_rate=1.0, http_statuses=[503])
    wait_for(lambda: gw.state.stats.requests >= 5, timeout=60, what="503 answers")
    gw.faults()
    # Then every job completes, none dead-lettered early, each agreement unsigned once
    jobs = env.wait_terminal(ids, timeout=120)
    assert {j["state"] for j in jobs.values()} == {"unsigned"}
    assert all(gw.unsigns(f"a{i}") == 1 for i in range(1, 21))


def test_a_halt_storm_opens_the_breaker_and_nothing_fails(emulator_factory, worker_env_factory):
    gw = emulator_factory([cae(f"a{i}", i) for i in range(1, 31)])
    gw.faults(global_code="ILLEGAL_SIGN")
    env = worker_env_factory(gateway_url=gw.url, partner=PARTNER, key=KEY)
    env.start_worker("w1", concurrency=2)
    ids = [env.enqueue({"customer_code": f"C{i:05d}"}) for i in range(1, 31)]
    # The breaker opens within a few jobs and the rest are parked, not failed
    wait_for(lambda: env.redis.hget(env.keys.breaker, "state") == b"open", timeout=60,
             what="breaker to open")
    wait_for(lambda: all(env.job(j).get("state") == "parked" for j in ids), timeout=60,
             what="jobs parked")
    assert gw.state.stats.requests <= 3 + 2  # threshold + requests already in flight
    assert not any(env.job(j).get("state") in TERMINAL_STATES for j in ids)
    # After the cause is fixed and the breaker reset, every job completes
    gw.faults()
    out = subprocess.run([sys.executable, "-m", "unsign_worker", "breaker", "reset"],
                         env=env.env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    jobs = env.wait_terminal(ids, timeout=120)
    assert {j["state"] for j in jobs.values()} == {"unsigned"}


def test_a_failing_success_hook_is_retried_on_its_own(emulator_factory, worker_env_factory,
                                                       key_prefix, redis_client):
    gw = emulator_factory([cae("a1", 1)])
    env = hooked(worker_env_factory, gw, key_prefix, hook="flaky",
                 UNSIGN_TEST_HOOK_FAILURES="2")
    env.start_worker("w1")
    job_id = env.enqueue({"customer_code": "C00001"})
    assert env.wait_terminal([job_id])[job_id]["state"] == "unsigned"
    wait_for(lambda: calls(redis_client, f"{key_prefix}hookcalls"), timeout=90,
             what="the hook to succeed")
    assert gw.requests("a1") == 1  # the hook's retries never unsign again

    def hook_record() -> dict[str, str]:
        return {k.decode(): v.decode() for k, v in
                redis_client.hgetall(env.keys.hook(_identity("C00001"))).items()}

    hook = wait_for(lambda: hook_record().get("state") == "done" and hook_record(),
                    timeout=30, what="the hook record to say done")
    assert hook["attempts"] == "3"
    assert len(calls(redis_client, f"{key_prefix}hookcalls")) == 1


def _identity(customer_code: str) -> str:
    from unsign_worker.protocol.params import UnsignRequest

    return UnsignRequest(customer_code=customer_code).identity(PARTNER).key


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server on PATH")
def test_a_redis_restart_with_append_only_persistence_loses_and_repeats_nothing(
        emulator_factory, worker_env_factory, tmp_path):
    port = free_port()
    data = tmp_path / "redis"
    data.mkdir()

    def start_redis() -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data),
             "--appendonly", "yes", "--appendfsync", "always", "--save", "",
             "--maxmemory-policy", "noeviction"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=port)
        wait_for(lambda: _pings(client), timeout=30, what="private redis")
        return proc

    server = start_redis()
    try:
        gw = emulator_factory([cae(f"a{i}", i) for i in range(1, 121)])
        gw.faults(latency_ms=30)
        env = worker_env_factory(gateway_url=gw.url, partner=PARTNER, key=KEY)
        env.redis_url = f"redis://127.0.0.1:{port}/0"
        env.__post_init__()
        env.start_worker("w1", concurrency=4)
        ids = [env.enqueue({"customer_code": f"C{i:05d}"}) for i in range(1, 121)]
        wait_for(lambda: gw.state.stats.unsigns >= 20, timeout=60, what="campaign under way")
        # Restart Redis mid-campaign (SHUTDOWN writes the append-only file; then start again)
        try:
            redis.Redis(port=port).shutdown(nosave=False)
        except redis.ConnectionError:
            pass
        server.wait(timeout=30)
        server = start_redis()
        env.redis = redis.Redis(port=port)
        # the worker reconnects by itself; should it still die, its supervisor restarts it
        wait_for(lambda: _pings(env.redis), timeout=30, what="redis back")
        if env.procs[-1].poll() is not None:
            env.start_worker("w1b", concurrency=4)
        jobs = env.wait_terminal(ids, timeout=180)
        # a job whose answer arrived while Redis was down is settled from the gateway's state
        # (its earlier attempt may have reached it): already_unsigned, never a second unsign
        assert {j["state"] for j in jobs.values()} <= {"unsigned", "already_unsigned"}, \
            {j["state"] for j in jobs.values()}
        assert all(gw.unsigns(f"a{i}") == 1 for i in range(1, 121))
        assert gw.state.stats.duplicates == 0
    finally:
        for proc in list(env.procs) if "env" in locals() else []:
            env.kill(proc, signal.SIGKILL)
        server.terminate()
        server.wait(timeout=30)


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


def test_the_worker_refuses_pickled_messages(worker_env_factory, emulator_factory):
    gw = emulator_factory([cae("a1", 1)])
    env = worker_env_factory(gateway_url=gw.url, partner=PARTNER, key=KEY)
    env.start_worker("w1")
    marker = Path(env.tmp) / "pwned"
    from kombu import Connection

    with Connection(env.redis_url, transport_options={"global_keyprefix": env.prefix}) as conn:
        producer = conn.Producer(serializer="pickle")
        producer.publish({"job": {"cmd": f"touch {marker}"}}, routing_key="unsign",
                         headers={"task": "unsign_worker.unsign", "id": "evil-1"},
                         serializer="pickle")
    wait_for(lambda: "evil-1" in env.log_tail(lines=400) or "pickle" in env.log_tail(lines=400),
             timeout=60, what="the refusal to be logged")
    assert not marker.exists()
    assert os.path.exists(env.tmp / "w1.log")
