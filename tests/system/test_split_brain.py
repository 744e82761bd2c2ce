"""Split brain behind Sentinel: the primary is failed over while one worker still reaches it.

Private servers on loopback: a primary, two replicas, three sentinels. The partition is made
without namespaces, so that the old primary keeps taking worker A's writes while the sentinels
fail over, as when a partition cuts the primary from its replicas, its Sentinels and worker B:

- worker A reaches the sentinels through proxies (``tests/plugins/tcp_proxy.py``) that are cut: it
  keeps its open connections to the old primary and cannot learn of the failover;
- the replicas are shut out of the old primary (their replication user disabled there, their
  links killed); once the sentinels see both links down, they fail over (``SENTINEL
  FAILOVER``) but cannot demote the old primary while the partition lasts: its ACL denies
  their user ``REPLICAOF``;
- worker B is shut out of the old primary (its ACL user disabled, its connections killed), so
  it follows the sentinels to the new primary.

On heal the sentinels demote the old primary, which drops what worker A wrote meanwhile.

The checker judges from records the product does not write: the emulator's own counts (which
agreements were really unsigned, how often) and the hook's calls appended to a file. (c) no job
rejected or dead-lettered for an agreement our own request unsigned; (d) the hook exactly once
per idempotency key of a successful job. With the configuration docs/deployment.md recommends
(``UNSIGN_REPLICA_ACKS=1``, ``min-replicas-to-write 1``, two replicas) both are asserted 0;
without it the figures are printed.
"""

from __future__ import annotations

import collections
import signal
import time
from pathlib import Path

import pytest
import redis

from tests import paths
from tests.plugins.emulator import KEY, PARTNER, cae
from tests.plugins.tcp_proxy import Mode, TcpProxy
from tests.private_redis import PrivateRedis, needs_redis_server, start_sentinels, wait_until
from unsign_worker.protocol.params import UnsignRequest
from unsign_worker.store.sentinel import connect
from unsign_worker.store.states import TERMINAL_STATES

pytestmark = [pytest.mark.slow, needs_redis_server]
MASTER = "splitmaster"
JOBS = 300
PARTITION_SECONDS = 15
SENTINEL_USER, SENTINEL_PASSWORD = "sentinel", "sentinel-pw"
WORKER_PASSWORD = "worker-pw"
REPLICATION_USER, REPLICATION_PASSWORD = "repl", "repl-pw"
SUCCESS = {"unsigned", "already_unsigned"}
ROOT_DIR = str(paths.ROOT)


class Cluster:
    """Primary, two replicas and three sentinels in ``root``; the data servers' ACL has a user
    for the sentinels and one per worker host."""

    def __init__(self, root: Path, *, min_replicas: bool) -> None:
        extra = ["--min-replicas-to-write", "1", "--min-replicas-max-lag", "2"] \
            if min_replicas else []
        # replication authenticates as its own user: the partition shuts it out of the primary
        extra += ["--masteruser", REPLICATION_USER, "--masterauth", REPLICATION_PASSWORD]
        self.primary = PrivateRedis(root / "p", appendfsync="everysec", extra=extra).start()
        self.replicas = [PrivateRedis(root / f"r{n}", appendfsync="everysec", extra=[
            *extra, "--replicaof", "127.0.0.1", str(self.primary.port)]) for n in (1, 2)]
        self.servers = [self.primary, *self.replicas]
        for server in self.servers:
            if server is not self.primary:
                server.start()
            client = server.client()
            client.acl_setuser(REPLICATION_USER, enabled=True,
                               passwords=[f"+{REPLICATION_PASSWORD}"], keys=["*"],
                               channels=["*"], commands=["+@all"])
            client.acl_setuser(SENTINEL_USER, enabled=True, passwords=[f"+{SENTINEL_PASSWORD}"],
                               keys=["*"], channels=["*"], commands=["+@all"])
            for user in ("a", "b"):
                client.acl_setuser(user, enabled=True, passwords=[f"+{WORKER_PASSWORD}"],
                                   keys=["*"], channels=["*"], commands=["+@all"])
        for replica in self.replicas:
            wait_until(lambda r=replica: r.client().info("replication").get(
                "master_link_status") == "up", 30, "the replicas to sync")
        self.sentinels = start_sentinels(
            root, MASTER, self.primary.port, replicas=2,
            conf=f"sentinel auth-user {MASTER} {SENTINEL_USER}\n"
                 f"sentinel auth-pass {MASTER} {SENTINEL_PASSWORD}\n")
        # worker A's only way to the sentinels
        self.proxies = [TcpProxy(("127.0.0.1", port)) for port, _ in self.sentinels]

    def url(self, user: str = "", *, via_proxies: bool = False) -> str:
        ports = [p.port for p in self.proxies] if via_proxies else [p for p, _ in self.sentinels]
        auth = f"{user}:{WORKER_PASSWORD}@" if user else ""
        hosts = ",".join(f"127.0.0.1:{port}" for port in ports)
        return f"redis+sentinel://{auth}{hosts}/{MASTER}/0?sentinel_auth=none"

    def master_port(self, sentinel_port: int) -> int:
        return int(redis.Redis(port=sentinel_port).sentinel_get_master_addr_by_name(MASTER)[1])

    def partition(self) -> None:
        """Cut the primary from its replicas, the sentinels and worker B, not from worker A."""
        old = self.primary.client()
        old.acl_setuser(SENTINEL_USER, enabled=True, commands=["-replicaof", "-slaveof"])
        old.acl_setuser(REPLICATION_USER, enabled=False)
        old.client_kill_filter(_type="replica")
        for proxy in self.proxies:
            proxy.set_mode(Mode.RESET)  # open connections reset, new ones too
        # the sentinels see the replicas' links down (their offsets then stop moving), as
        # before a failover that a partition causes, so they promote the most advanced one
        for port, _ in self.sentinels:
            sentinel = redis.Redis(port=port)
            wait_until(lambda s=sentinel: all(r.get("master-link-status") in ("err", b"err")
                                              for r in s.sentinel_slaves(MASTER)), 60,
                       "the sentinels to see the replicas cut off")
        redis.Redis(port=self.sentinels[0][0]).sentinel_failover(MASTER)
        wait_until(lambda: all(self.master_port(port) != self.primary.port
                               for port, _ in self.sentinels), 60, "the failover")
        old.acl_setuser("b", enabled=False)
        old.client_kill_filter(user="b")

    def heal(self) -> None:
        old = self.primary.client()
        old.acl_setuser(SENTINEL_USER, enabled=True, commands=["+replicaof", "+slaveof"])
        old.acl_setuser("b", enabled=True)
        old.acl_setuser(REPLICATION_USER, enabled=True)
        for proxy in self.proxies:
            proxy.forward()
        wait_until(lambda: old.info("replication").get("role") == "slave", 60,
                   "the sentinels to demote the old primary")

    def close(self) -> None:
        for proxy in self.proxies:
            proxy.close()
        for _, proc in self.sentinels:
            proc.terminate()
        for _, proc in self.sentinels:
            proc.wait(timeout=15)
        for server in self.servers:
            server.close()


def states(client: redis.Redis, keys, job_ids):  # type: ignore[no-untyped-def]
    try:
        pipe = client.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hget(keys.job(job_id), "state")
        return [(s or b"").decode() for s in pipe.execute()]
    except redis.ConnectionError:  # the refusals of a failing-over Redis included
        return None


def hook_calls(path: Path) -> collections.Counter[str]:
    if not path.exists():
        return collections.Counter()
    return collections.Counter(line.split()[0] for line in path.read_text().splitlines())


def run_split_brain(recommended: bool, emulator_factory, worker_env_factory,  # type: ignore[no-untyped-def]
                    tmp_path: Path, *, min_replicas: bool | None = None) -> dict[str, int]:
    min_replicas = recommended if min_replicas is None else min_replicas
    cluster = Cluster(tmp_path / "ha", min_replicas=min_replicas)
    hook_file = tmp_path / "hooks.txt"
    envs = []
    try:
        gw = emulator_factory([cae(f"a{i}", i) for i in range(1, JOBS + 1)])
        gw.faults(latency_ms=150)
        config = {"UNSIGN_REPLICA_ACKS": "1" if recommended else "0",
                  "UNSIGN_REPLICA_WAIT_MS": "300", "UNSIGN_LEASE": "10",
                  "UNSIGN_SUCCESS_HOOK": "tests.hook_target:record_file",
                  "UNSIGN_TEST_HOOK_FILE": str(hook_file),
                  "UNSIGN_TEST_HOOK_LEASE_SECONDS": "10", "PYTHONPATH": ROOT_DIR}
        for user, via_proxies in (("a", True), ("b", False)):
            env = worker_env_factory(gateway_url=gw.url, partner=PARTNER, key=KEY, **config)
            env.redis_url = cluster.url(user, via_proxies=via_proxies)
            env.__post_init__()
            envs.append(env)
        env_a, env_b = envs
        worker_a = env_a.start_worker("a", concurrency=4)
        worker_b = env_b.start_worker("b", concurrency=4)
        ids = env_b.enqueue_many([{"customer_code": f"C{i:05d}"} for i in range(1, JOBS + 1)],
                                 batch_size=10)
        wait_until(lambda: gw.state.stats.unsigns >= JOBS // 6, 120, "the campaign under way")
        cluster.partition()
        cut_at = time.monotonic()
        wait_until(lambda: time.monotonic() - cut_at > PARTITION_SECONDS, PARTITION_SECONDS + 5,
                   "the partition to last")
        cluster.heal()
        healed = time.monotonic()
        reader = connect(cluster.url())

        def finished() -> bool:
            found = states(reader, env_b.keys, ids)
            return found is not None and all(s in TERMINAL_STATES for s in found)

        wait_until(finished, 240, "every job to end after the heal")
        ended_in = time.monotonic() - healed
        final = dict(zip(ids, states(reader, env_b.keys, ids) or [], strict=True))
        keys = {job_id: "unsign:" + UnsignRequest(customer_code=f"C{i:05d}").identity(
            PARTNER).key for i, job_id in enumerate(ids, start=1)}
        succeeded = [job_id for job_id, state in final.items() if state in SUCCESS]
        wait_until(lambda: all(hook_calls(hook_file)[keys[j]] for j in succeeded), 120,
                   "every success hook to run")
        calls = hook_calls(hook_file)
        unsigned_at_gateway = {i for i in range(1, JOBS + 1) if gw.unsigns(f"a{i}")}
        figures = {
            "c_refused_after_our_unsign": sum(
                1 for i, job_id in enumerate(ids, start=1)
                if i in unsigned_at_gateway and final[job_id] in ("rejected", "dead_lettered")),
            "d_hook_repeated": sum(1 for j in succeeded if calls[keys[j]] > 1),
            "d_hook_missing": sum(1 for j in succeeded if not calls[keys[j]]),
            "unsigned_twice": sum(1 for i in range(1, JOBS + 1) if gw.unsigns(f"a{i}") > 1),
            "not_unsigned": JOBS - len(unsigned_at_gateway),
            "already_unsigned": sum(1 for s in final.values() if s == "already_unsigned"),
            "seconds_to_terminal_after_heal": round(ended_in),
        }
        alive = {"a": worker_a.poll() is None, "b": worker_b.poll() is None}
        config_name = {(True, True): "recommended", (True, False): "replica acks alone",
                       (False, False): "no replica acks, no min-replicas"}.get(
            (recommended, min_replicas), "min-replicas alone")
        print(f"split brain ({config_name}), {JOBS} jobs, {PARTITION_SECONDS}s partition: "
              f"{figures}; workers alive {alive}")
        assert alive == {"a": True, "b": True}, env_a.log_tail("a")
        return figures
    finally:
        for env in envs:
            for proc in env.procs:
                env.kill(proc, signal.SIGKILL)
        cluster.close()


def test_split_brain_with_the_recommended_configuration_violates_nothing(
        emulator_factory, worker_env_factory, tmp_path):
    figures = run_split_brain(True, emulator_factory, worker_env_factory, tmp_path)
    assert figures["c_refused_after_our_unsign"] == 0
    assert figures["d_hook_repeated"] == figures["d_hook_missing"] == 0
    assert figures["unsigned_twice"] == figures["not_unsigned"] == 0


def test_split_brain_with_replica_acks_alone_violates_nothing(
        emulator_factory, worker_env_factory, tmp_path):
    """The old primary takes worker A's writes for the whole partition (no
    min-replicas-to-write): the hold alone keeps A from acting on any of them."""
    figures = run_split_brain(True, emulator_factory, worker_env_factory, tmp_path,
                              min_replicas=False)
    assert figures["c_refused_after_our_unsign"] == 0
    assert figures["d_hook_repeated"] == figures["d_hook_missing"] == 0


def test_split_brain_without_replica_acks_measured(emulator_factory, worker_env_factory,
                                                   tmp_path):
    figures = run_split_brain(False, emulator_factory, worker_env_factory, tmp_path)
    assert figures["unsigned_twice"] == 0  # the gateway itself refuses a second unsign
