"""Starting the round's services on their hosts, with production settings, and waiting until
each is ready: the gateway (the emulator over TLS as ``mapi.alipay.com``), Redis and the
Sentinels, the workers, the operator's console and Flower, the producers.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import redis
from redis.sentinel import Sentinel

from rehearsal.processes import Proc, Processes, base_env
from rehearsal.proxy import write_mode
from rehearsal.stage import (
    CLI,
    MASTER,
    PARTNER,
    PRODUCER,
    REDIS_HOSTS,
    REDIS_PORT,
    SENTINEL_HOSTS,
    Stage,
)
from rehearsal.topology import GATEWAY_NAME, PROXY_ADDRESS
from unsign_worker.store.keys import Keys

WORKERS = ("worker1", "worker2", "worker3")
KEYS = Keys("unsign:")
READY_SECONDS = 90.0


def wait_until(condition: Callable[[], object], what: str, timeout: float = READY_SECONDS,
               procs: list[Proc] | None = None) -> None:
    """Poll ``condition`` until it is true; raise naming ``what`` (and the logs' tails of
    ``procs`` that died) after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                return
        except (redis.RedisError, OSError):
            pass
        dead = [p for p in procs or [] if not p.alive()]
        if dead or time.monotonic() > deadline:
            tails = "\n".join(f"--- {p.host}/{p.name}:\n{p.tail()}" for p in dead)
            raise RuntimeError(f"timed out waiting for {what}" + (f"\n{tails}" if dead else ""))
        time.sleep(0.3)


class Services:
    """Start and watch the services of one round."""

    def __init__(self, stage: Stage, procs: Processes, *, lease: float, seed: int,
                 replica_acks: int = 1) -> None:
        self.stage = stage
        self.procs = procs
        self.topology = stage.topology
        self.lease = lease
        self.seed = seed
        self.replica_acks = replica_acks
        root = stage.root
        self.request_log = root / "gateway-requests.jsonl"
        self.hook_file = root / "hook-calls.jsonl"
        self.app_file = root / "app-entries.jsonl"
        self.stop_file = root / "app.stop"

    # -- Redis -----------------------------------------------------------------------------

    def admin_redis(self, host: str) -> redis.Redis:
        return redis.Redis(host=self.topology.address(host), port=REDIS_PORT,
                           password=self.stage.admin_password, socket_timeout=2,
                           socket_connect_timeout=2)

    def sentinel(self) -> Sentinel:
        return Sentinel(self.stage.sentinel_addresses(), socket_timeout=2,
                        sentinel_kwargs={"username": "admin",
                                         "password": self.stage.admin_password,
                                         "socket_timeout": 2, "socket_connect_timeout": 2})

    def primary_host(self) -> str:
        """The host the Sentinels name as primary now."""
        address, _ = self.sentinel().discover_master(MASTER)
        return self.topology.by_address()[address]

    def store(self) -> redis.Redis:
        """The harness's own client (the administrator), following the primary."""
        return self.sentinel().master_for(MASTER, password=self.stage.admin_password,
                                          socket_timeout=5, socket_connect_timeout=2)

    def replicating(self, host: str) -> bool:
        info: dict[str, Any] = self.admin_redis(host).info("replication")
        return info.get("master_link_status") == "up"

    def start_redis(self) -> None:
        for host in REDIS_HOSTS:
            self.procs.start(host, "redis", ["redis-server",
                                             str(self.stage.root / host / "redis.conf")])
        for host in REDIS_HOSTS[1:]:
            wait_until(partial(self.replicating, host), f"{host} to replicate",
                       procs=self.procs.on(host))
        for host in SENTINEL_HOSTS:
            self.procs.start(host, "sentinel", ["redis-server",
                                                str(self.stage.root / host / "sentinel.conf"),
                                                "--sentinel"])

        def sentinels_agree() -> bool:
            for address, port in self.stage.sentinel_addresses():
                client = redis.Redis(host=address, port=port, username="admin",
                                     password=self.stage.admin_password, socket_timeout=2)
                state: dict[str, Any] = client.sentinel_master(MASTER)  # type: ignore[assignment]
                if (int(state.get("num-other-sentinels", 0)) < 2
                        or int(state.get("num-slaves", 0)) < 2):
                    return False
            return True

        wait_until(sentinels_agree, "the Sentinels to know each other and both replicas",
                   procs=[p for h in SENTINEL_HOSTS for p in self.procs.on(h)])

    # -- the gateway -----------------------------------------------------------------------

    def start_gateway(self) -> None:
        scenario = self.stage.root / "scenario.json"
        scenario.write_text(json.dumps({"seed": self.seed,
                                        "faults": {"latency_ms": 800, "jitter_ms": 400}}))
        proc = self.procs.start("gateway", "emulator", [
            CLI, "emulator", "--host", self.topology.address("gateway"), "--public",
            "--port", "443", "--agreements", str(self.stage.agreements_file),
            "--scenario", str(scenario), "--tls-cert", str(self.stage.cert_file),
            "--tls-key", str(self.stage.cert_key_file), "--request-log", str(self.request_log),
            "--no-uvloop"], env={"ALIPAY_KEY_FILE": str(self.stage.key_file),
                                  "ALIPAY_PARTNER": PARTNER})
        wait_until(lambda: "emulator: serving" in proc.log.read_text(errors="replace"),
                   "the gateway to serve", procs=[proc])

    # -- workers ---------------------------------------------------------------------------

    def worker_env(self) -> dict[str, str]:
        """Production settings: no sandbox, the real URL by name, only the private CA trusted,
        the Sentinel URL of the workers' ACL user; a short lease so a round fits two cores."""
        return {
            "UNSIGN_REDIS_URL": self.stage.redis_url("worker"),
            "ALIPAY_GATEWAY_URL": f"https://{GATEWAY_NAME}/gateway.do",
            "ALIPAY_CA_BUNDLE": str(self.stage.ca_file),
            "ALIPAY_PARTNER": PARTNER,
            "ALIPAY_KEY_FILE": str(self.stage.key_file),
            "UNSIGN_LEASE": f"{self.lease:g}",
            "UNSIGN_SWEEP_INTERVAL": "1",
            "UNSIGN_REPLICA_ACKS": str(self.replica_acks),
            "UNSIGN_SUCCESS_HOOK": "rehearsal.hook:record",
            "REHEARSAL_HOOK_FILE": str(self.hook_file),
        }

    def proxy_control(self, host: str) -> Path:
        return self.stage.root / f"proxy-{host}.json"

    def start_proxy(self, host: str) -> Proc:
        """The TCP proxy on the host's path to the gateway (its /etc/hosts names it)."""
        control = self.proxy_control(host)
        write_mode(control, "pass")
        proc = self.procs.start(host, "proxy", [
            str(Path(CLI).with_name("python")), "-m", "rehearsal.proxy",
            "--listen", f"{PROXY_ADDRESS}:443",
            "--target", f"{self.topology.address('gateway')}:443", "--control", str(control)])
        wait_until(lambda: "proxy: " in proc.log.read_text(errors="replace"),
                   f"the proxy of {host}", procs=[proc])
        return proc

    def start_worker(self, host: str) -> Proc:
        if host in self.topology.proxied:
            self.start_proxy(host)
        return self.procs.start(host, "worker", [
            CLI, "worker", "--hostname", f"unsign@{host}", "--concurrency", "20",
            "--loglevel", "INFO"], env=self.worker_env())

    def worker_up(self, host: str) -> bool:
        members: list[bytes] = self.store().zrange(KEYS.workers, 0, -1)  # type: ignore[assignment]
        return any(host in m.decode() for m in members)

    def start_workers(self) -> None:
        for host in WORKERS:
            self.start_worker(host)
        for host in WORKERS:
            wait_until(partial(self.worker_up, host), f"{host} to come up",
                       procs=self.procs.on(host))

    # -- operator and producers ------------------------------------------------------------

    def operator_env(self) -> dict[str, str]:
        return {"UNSIGN_REDIS_URL": self.stage.redis_url("operator")}

    def start_operator(self) -> None:
        self.run_once("operator", ["producer", "add", PRODUCER])
        auth = self.stage.root / "console_auth"
        auth.write_text(f"ops:{self.stage.passwords['operator'][:16]}")
        auth.chmod(0o600)
        address = self.topology.address("operator")
        self.procs.start("operator", "console", [
            CLI, "console", "--host", address, "--port", "5560"],
            env={**self.operator_env(), "UNSIGN_CONSOLE_AUTH_FILE": str(auth)})
        self.procs.start("operator", "flower", [
            CLI, "flower", "--address", address, "--port", "5555"],
            env={**self.operator_env(), "FLOWER_BASIC_AUTH_FILE": str(auth)})

    def run_once(self, host: str, args: list[str]) -> None:
        """Run one command of the CLI on ``host`` as the operator, to its end."""
        done = subprocess.run([*self.topology.exec_prefix(host), CLI, *args],
                              env={**base_env(), **self.operator_env()},
                              capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} on {host}: {done.stdout}{done.stderr}")

    def start_campaign(self, campaign_id: str, rate: int) -> Proc:
        return self.procs.start("producer", "campaign", [
            CLI, "campaign", "run", str(self.stage.campaign_file), "--id", campaign_id,
            "--name", campaign_id, "--rate", f"{rate}/s", "--json",
            "--rejects", str(self.stage.root / "campaign-rejects.csv")],
            env=self.operator_env())

    def start_application(self, interval: float) -> Proc:
        return self.procs.start("producer", "application", [
            str(Path(CLI).with_name("python")), "-m", "rehearsal.application",
            str(self.stage.app_rows_file), "--out", str(self.app_file),
            "--interval", f"{interval:g}", "--stop-file", str(self.stop_file)],
            env={"REHEARSAL_PRODUCER_URL": self.stage.redis_url("producer")})
