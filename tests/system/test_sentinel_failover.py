"""Redis Sentinel failover under a running campaign: a real master, two replicas and three
sentinels (``redis-server --sentinel``) on free loopback ports; the master is SIGKILLed
mid-campaign; real worker processes and the emulator."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
import redis

from tests.plugins.emulator import KEY, PARTNER, cae
from tests.private_redis import PrivateRedis, needs_redis_server, start_sentinels, wait_until
from unsign_worker.store.states import TERMINAL_STATES

pytestmark = [pytest.mark.slow, needs_redis_server]
MASTER = "unsignmaster"
JOBS = 150


class SentinelCluster:
    """A master, two replicas, three sentinels; everything in ``root``."""

    def __init__(self, root: Path) -> None:
        self.master = PrivateRedis(root / "master", appendfsync="everysec").start()
        # two replicas, as docs/deployment.md recommends: after the failover one is left to
        # confirm the writes (UNSIGN_REPLICA_ACKS=1, the default with a Sentinel URL)
        self.replicas = [PrivateRedis(root / f"replica{n}", appendfsync="everysec", extra=[
            "--replicaof", "127.0.0.1", str(self.master.port)]).start() for n in (1, 2)]
        for replica in self.replicas:
            wait_until(lambda r=replica: r.client().info("replication").get(
                "master_link_status") == "up", 30, "the replicas to sync")
        self.sentinels = start_sentinels(root, MASTER, self.master.port, replicas=2)

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{port}" for port, _ in self.sentinels)
        return f"redis+sentinel://{hosts}/{MASTER}/0"

    def close(self) -> None:
        for _, proc in self.sentinels:
            proc.terminate()
        for _, proc in self.sentinels:
            proc.wait(timeout=15)
        self.master.close()
        for replica in self.replicas:
            replica.close()


def states(env, job_ids):  # type: ignore[no-untyped-def]
    """The jobs' states, or None while Redis fails over."""
    try:
        pipe = env.redis.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hget(env.keys.job(job_id), "state")
        return [(s or b"").decode() for s in pipe.execute()]
    except (redis.ConnectionError, redis.TimeoutError, redis.ReadOnlyError):
        return None


def test_a_campaign_completes_after_the_master_is_killed_and_a_replica_takes_over(
        emulator_factory, worker_env_factory, tmp_path):
    cluster = SentinelCluster(tmp_path / "ha")
    try:
        gw = emulator_factory([cae(f"a{i}", i) for i in range(1, JOBS + 1)])
        gw.faults(latency_ms=60)
        env = worker_env_factory(gateway_url=gw.url, partner=PARTNER, key=KEY)
        env.redis_url = cluster.url
        env.__post_init__()
        env.start_worker("w1", concurrency=4)
        env.start_worker("w2", concurrency=4)
        ids = env.enqueue_many([{"customer_code": f"C{i:05d}"} for i in range(1, JOBS + 1)],
                               batch_size=10)
        wait_until(lambda: gw.state.stats.unsigns >= JOBS // 3, 120, "campaign under way")
        # When the master dies (SIGKILL) mid-campaign
        cluster.master.kill()
        killed = time.monotonic()
        # Then a replica is promoted, and every job ends
        def finished() -> bool:
            found = states(env, ids)
            return found is not None and all(s in TERMINAL_STATES for s in found)

        wait_until(finished, 240, "every job to end after the failover")
        recovered_in = time.monotonic() - killed
        final = states(env, ids)
        assert final is not None
        assert set(final) <= {"unsigned", "already_unsigned"}, sorted(set(final))
        # no job lost, and no agreement unsigned by two different jobs
        assert all(gw.unsigns(f"a{i}") == 1 for i in range(1, JOBS + 1))
        assert gw.state.stats.duplicates == 0
        assert all(p.poll() is None for p in env.procs), env.log_tail()
        print(f"failover: every job terminal {recovered_in:.1f}s after the master was killed; "
              f"{final.count('already_unsigned')} settled as already_unsigned")
    finally:
        for proc in list(env.procs) if "env" in locals() else []:
            env.kill(proc, signal.SIGKILL)
        cluster.close()
