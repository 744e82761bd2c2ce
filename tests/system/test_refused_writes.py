"""A worker whose Redis refuses writes waits and recovers; it never exits for good.

A private primary with ``min-replicas-to-write 1`` and one replica, a real worker with
``UNSIGN_REPLICA_ACKS=1`` and a campaign: mid-campaign the replica is stopped (the primary
answers ``NOREPLICAS``), then started again. The campaign finishes, each agreement unsigned
once, and the worker is still running. Before, the refusal reached Celery's consumer as a
command error ("Unrecoverable error"), and the jobs stayed ``in_flight``. (A primary demoted
under a Sentinel URL is covered by ``tests/system/test_split_brain.py``.)
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis

from tests.plugins.emulator import KEY, PARTNER, cae
from tests.private_redis import PrivateRedis, needs_redis_server, wait_until

pytestmark = [pytest.mark.slow, needs_redis_server]
JOBS = 120
#: how long the refusal lasts once the primary refuses
REFUSED_SECONDS = 6


def refuses(server: PrivateRedis) -> bool:
    try:
        server.client().set("probe", "1")
    except redis.ResponseError as exc:
        return str(exc).startswith(("NOREPLICAS", "Not enough good replicas"))
    return False


def linked(replica: PrivateRedis) -> bool:
    return replica.client().info("replication").get("master_link_status") == "up"


def hold_for(seconds: float) -> None:
    """Let the refusal last: the worker must ride it out, not merely miss it."""
    until = time.monotonic() + seconds
    wait_until(lambda: time.monotonic() > until, seconds + 5, "the refusal to last")


def test_a_worker_rides_out_noreplicas(emulator_factory, worker_env_factory,
                                                    tmp_path: Path):
    primary = PrivateRedis(tmp_path / "p", appendfsync="everysec", extra=[
        "--min-replicas-to-write", "1", "--min-replicas-max-lag", "1"]).start()
    replica = PrivateRedis(tmp_path / "r", appendfsync="everysec", extra=[
        "--replicaof", "127.0.0.1", str(primary.port)]).start()
    try:
        wait_until(lambda: linked(replica), 30, "the replica to sync")
        gw = emulator_factory([cae(f"a{i}", i) for i in range(1, JOBS + 1)])
        gw.faults(latency_ms=150)
        env = worker_env_factory(gateway_url=gw.url, partner=PARTNER, key=KEY,
                                 UNSIGN_REPLICA_ACKS="1", UNSIGN_REPLICA_WAIT_MS="300")
        env.redis_url = primary.url
        env.__post_init__()
        worker = env.start_worker("w1", concurrency=4)
        ids = env.enqueue_many([{"customer_code": f"C{i:05d}"} for i in range(1, JOBS + 1)],
                               batch_size=10)
        # the replica stops: the primary refuses writes (NOREPLICAS)
        wait_until(lambda: gw.state.stats.unsigns >= JOBS // 6, 120, "the campaign under way")
        replica.stop()
        wait_until(lambda: refuses(primary), 30, "the primary to refuse writes")
        hold_for(REFUSED_SECONDS)
        assert worker.poll() is None, env.log_tail("w1")
        replica.start()
        wait_until(lambda: linked(replica), 60, "the replica to sync again")
        # every job ends, each agreement unsigned once, the worker never exited
        jobs = env.wait_terminal(ids, timeout=240)
        assert {job["state"] for job in jobs.values()} <= {"unsigned", "already_unsigned"}
        assert all(gw.unsigns(f"a{i}") == 1 for i in range(1, JOBS + 1))
        assert worker.poll() is None, env.log_tail("w1")
        log = (tmp_path / "w1.log").read_text(errors="replace")
        assert "Unrecoverable error" not in log
        print(f"refused writes: {JOBS} jobs terminal, "
              f"{sum(j['state'] == 'already_unsigned' for j in jobs.values())} already_unsigned; "
              f"worker alive")
    finally:
        replica.close()
        primary.close()
