"""A private Redis stopped and restarted under running code: the success hook's "done" mark, the
client's ``wait``, and ``campaign run`` watching (with a worker) ride the outage out."""

from __future__ import annotations

import csv
import json
import logging
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.plugins.campaign_plan import run_jobs
from tests.plugins.emulator import Emulator
from tests.plugins.worker_fixtures import BIN, wait_for
from tests.private_redis import PrivateRedis, needs_redis_server
from unsign_worker.emulator.agreements import agreement_from_entry
from unsign_worker.emulator.config import build_config
from unsign_worker.emulator.seed import CAMPAIGN_COLUMNS, DEFAULT_PARTNER, generate
from unsign_worker.emulator.state import EmulatorState
from unsign_worker.producers.client import UnsignClient
from unsign_worker.producers.operator_client import OperatorClient
from unsign_worker.store.keys import Keys
from unsign_worker.store.outage import Outage
from unsign_worker.worker.hooks import HookRunner

pytestmark = [pytest.mark.slow, needs_redis_server]
KEY = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def private_redis(tmp_path: Path):  # type: ignore[no-untyped-def]
    server = PrivateRedis(tmp_path / "redis").start()
    yield server
    server.close()


def restart_later(server: PrivateRedis, after: float) -> threading.Thread:
    thread = threading.Thread(target=lambda: (time.sleep(after), server.start()), daemon=True)
    thread.start()
    return thread


def test_a_hook_that_ran_is_recorded_done_across_a_redis_restart(private_redis):
    keys = Keys("t:")
    client = private_redis.client()
    client.hset(keys.hook("ident"), mapping={
        "state": "pending", "attempts": 0, "idempotency_key": "unsign:ident",
        "event": json.dumps({"idempotency_key": "unsign:ident"})})
    calls: list[str] = []

    def hook(event: dict[str, str]) -> None:  # the merchant's step succeeds, then Redis goes
        calls.append(event["idempotency_key"])
        private_redis.stop()
        restart_later(private_redis, 15)  # longer than redis-py's own retries (~10 s)

    runner = HookRunner(client, keys, hook)
    assert runner.run("ident").status == "done"
    assert client.hget(keys.hook("ident"), "state") == b"done"
    assert runner.run("ident").status == "skipped"
    assert calls == ["unsign:ident"]


#: The job the waiting client follows; where each client reads its state: a producer its own
#: view of the job, the operator the job's record.
WAITED = "a" * 32
WAIT_CLIENTS = {
    "producer": (lambda url: UnsignClient(url, producer="crm", key_prefix="t:"),
                 f"t:producer:crm:job:{WAITED}"),
    "operator": (lambda url: OperatorClient(broker_url=url, key_prefix="t:"), f"t:job:{WAITED}"),
}


@pytest.mark.parametrize("who", list(WAIT_CLIENTS))
def test_client_wait_rides_out_a_redis_restart(private_redis, caplog, who):
    make, state_key = WAIT_CLIENTS[who]
    unsign = make(private_redis.url)
    client = private_redis.client()
    client.hset(state_key, mapping={"job_id": WAITED, "state": "in_flight"})
    private_redis.stop()

    def come_back() -> None:
        time.sleep(3)
        private_redis.start()
        private_redis.client().hset(state_key, "state", "unsigned")

    threading.Thread(target=come_back, daemon=True).start()
    with caplog.at_level(logging.INFO):
        status = unsign.wait(WAITED, timeout=60)
    assert status.state == "unsigned"
    texts = [r.getMessage() for r in caplog.records]
    assert sum("Redis unavailable since" in t for t in texts) == 1, texts
    unsign.close()


OUTAGE_SECONDS = 60


def start_emulator(data):  # type: ignore[no-untyped-def]
    state = EmulatorState(build_config(partner=DEFAULT_PARTNER, key=KEY),
                          [agreement_from_entry(a, f"a{i}") for i, a in
                           enumerate(data.agreements)])
    return state, Emulator(state=state).start()


def workers_on(server, worker_env_factory, emulator, **extra):  # type: ignore[no-untyped-def]
    """A worker environment on the private Redis ``server``."""
    env = worker_env_factory(gateway_url=emulator.url, partner=DEFAULT_PARTNER, key=KEY,
                             **extra)
    env.redis_url = server.url
    env.__post_init__()
    return env


def test_campaign_run_and_the_worker_ride_out_a_sixty_second_redis_outage(
        private_redis, worker_env_factory, tmp_path):
    data = generate(60, {"success": 1.0}, seed=7)
    state, emulator = start_emulator(data)
    try:
        env = workers_on(private_redis, worker_env_factory, emulator, UNSIGN_READ_TIMEOUT="5")
        env.start_worker("w1", concurrency=4)
        path = tmp_path / "campaign.csv"
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, CAMPAIGN_COLUMNS)
            writer.writeheader()
            writer.writerows(data.rows)
        out = open(tmp_path / "run.log", "wb")
        run = subprocess.Popen([str(BIN / "unsign-worker"), "campaign", "run", str(path),
                                "--rate", "4"], env={**env.env, "COLUMNS": "200"},
                               stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        stats = state.stats
        wait_for(lambda: stats.unsigns >= 8 and "60 enqueued" in (tmp_path / "run.log").read_text(
            errors="replace"), timeout=120, what="campaign enqueued and under way")
        # Redis goes away for a minute, then comes back with its append-only file
        private_redis.stop()
        time.sleep(0)  # the outage is timed by polling the clock below, not by a fixed sleep
        went = time.monotonic()
        wait_for(lambda: time.monotonic() - went >= OUTAGE_SECONDS, timeout=OUTAGE_SECONDS + 5,
                 interval=1, what="the outage to last a minute")
        assert run.poll() is None, (tmp_path / "run.log").read_text()
        private_redis.start()
        back = time.monotonic()
        code = wait_for(lambda: run.poll() is not None and (run.returncode,) or None,
                        timeout=240, interval=0.5, what="campaign run to finish")
        output = (tmp_path / "run.log").read_text(errors="replace")
        assert code == (0,), output
        assert output.count("Redis unavailable since") == 1, output
        assert "Redis available again" in output
        assert "Traceback" not in output
        assert stats.unsigns == 60 and stats.duplicates == 0
        assert env.procs[0].poll() is None, env.log_tail()
        worker_log = env.log_tail(lines=100000)
        assert worker_log.count("sweep: Redis unavailable since") == 1, worker_log
        assert "sweep failed" not in worker_log
        print(f"\nredis down {OUTAGE_SECONDS}s: campaign run alive, finished "
              f"{time.monotonic() - back:.1f}s after Redis came back; 60 agreements unsigned "
              f"once")
    finally:
        emulator.close()
        if "run" in locals() and run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)


def test_flower_sees_events_again_after_a_redis_outage_and_says_so_once(
        private_redis, worker_env_factory, tmp_path):
    from tests.ops.test_flower import CREDS, Flower

    data = generate(3, {"success": 1.0}, seed=8)
    _, emulator = start_emulator(data)
    flower = None
    try:
        env = workers_on(private_redis, worker_env_factory, emulator)
        env.start_worker("w1", concurrency=2)
        flower = Flower({**env.env, "FLOWER_BASIC_AUTH": CREDS}, tmp_path / "flower.log")
        params = [{k: v for k, v in row.items() if v and k != "reference"} for row in data.rows]
        flower.wait_capturing()
        first = env.enqueue(params[0])
        wait_for(lambda: first in flower.json("/api/tasks?limit=100").__repr__(), timeout=90,
                 interval=1, what="flower to see the first task")
        # Redis away for longer than redis-py's and kombu's own quick retries
        private_redis.stop()
        went = time.monotonic()
        wait_for(lambda: time.monotonic() - went >= 25, timeout=30, interval=1,
                 what="the outage to last")
        private_redis.start()
        # events sent before Flower listens again are not kept anywhere (pub/sub): wait until
        # it has seen one (a heartbeat), then run a job it must see
        wait_for(lambda: "available again" in (tmp_path / "flower.log").read_text(
            errors="replace"), timeout=90, interval=0.5, what="flower to capture again")
        second = env.enqueue(params[1])
        wait_for(lambda: second in repr(flower.json("/api/tasks?limit=100")), timeout=60,
                 interval=1, what="flower to see a task after the outage")
        log = (tmp_path / "flower.log").read_text(errors="replace")
        assert log.count("unavailable since") == 1, log
        assert "Failed to capture events" not in log
        assert flower.proc.poll() is None
    finally:
        if flower is not None:
            flower.stop()
        emulator.close()


def test_a_campaign_enqueue_rides_out_a_redis_outage_between_chunks(private_redis):
    import uuid

    from unsign_worker.producers.campaign.enqueue import CampaignEnqueuer
    from unsign_worker.producers.producer import Producer, producer_app
    from unsign_worker.store.campaigns import CampaignStore
    from unsign_worker.store.job import Job
    from unsign_worker.store.recovery import queued_in_broker

    keys = Keys("t:")
    client = private_redis.client()
    app = producer_app(private_redis.url, keys.prefix)
    producer = Producer(app, client, keys)
    store = CampaignStore(client, keys)
    store.begin("c-1", name="n", source="f.csv", total=20, rejected=0, rate=None)
    sends = 0
    plain_send = producer.send_batch

    def send_then_fail_once(jobs):  # type: ignore[no-untyped-def]
        nonlocal sends
        sends += 1
        plain_send(jobs)
        if sends == 2:  # Redis goes away right after the second chunk's message is sent
            private_redis.stop()
            restart_later(private_redis, 12)  # longer than redis-py's own retries

    producer.send_batch = send_then_fail_once  # type: ignore[method-assign]
    jobs = [Job(job_id=uuid.uuid4().hex, params={"customer_code": f"C{i:05d}"},
                campaign="c-1") for i in range(20)]
    said: list[str] = []
    enqueuer = CampaignEnqueuer(producer, store, chunk_size=5, batch_size=5)
    enqueuer.outage = Outage("Redis", said.append)
    run_jobs(enqueuer, "c-1", jobs, fresh=True)
    assert sum("unavailable since" in s for s in said) == 1
    client = private_redis.client()
    assert all(client.hget(keys.job(j.job_id), "sent_at") for j in jobs)
    assert {j.job_id for j in jobs} <= queued_in_broker(client, keys)
    app.close()
