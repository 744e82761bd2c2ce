"""One round: build the hosts, start every service, run the producers while the nemesis
carries out its schedule, wait for the jobs, read the records, check, report, tear down.

Teardown runs whatever happens (an error, Ctrl-C, SIGTERM): the processes are stopped and
every namespace, link and /etc/netns folder of the round's prefix removed (also at exit, and
by ``python -m rehearsal cleanup`` after a round killed outright).
"""

from __future__ import annotations

import atexit
import secrets
import signal
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import redis
from rich.console import Console

from rehearsal import collect
from rehearsal.checker import check
from rehearsal.faults import Faults
from rehearsal.nemesis import IMPLEMENTED, Fault, Timing, draw
from rehearsal.processes import Processes
from rehearsal.records import SUCCESS_STATES, FaultWindow
from rehearsal.report import RoundReport, rows
from rehearsal.services import WORKERS, Services
from rehearsal.stage import prepare
from rehearsal.topology import Topology, cleanup

#: how long after the last heal the round keeps watching for jobs to end, at least, seconds
OBSERVE_SECONDS = 60.0
#: the worker's hook lease (a hook whose worker died runs again after it), seconds
HOOK_LEASE_SECONDS = 120.0


@dataclass(frozen=True)
class RoundConfig:
    seed: int
    number: int
    root: Path
    jobs: int = 600
    app_jobs: int = 60
    lease: float = 10.0
    faults: int = 3
    kinds: tuple[str, ...] = IMPLEMENTED
    #: Redis's min-replicas-to-write and min-replicas-max-lag on every server, and the
    #: workers' UNSIGN_REPLICA_ACKS: deployment.md's recommended configuration by default
    min_replicas: int = 1
    min_replicas_max_lag: int = 2
    replica_acks: int = 1

    @property
    def configuration(self) -> dict[str, int]:
        return {"min-replicas-to-write": self.min_replicas,
                "min-replicas-max-lag": self.min_replicas_max_lag,
                "UNSIGN_REPLICA_ACKS": self.replica_acks}

    @property
    def bound(self) -> float:
        """Invariant (a): every job terminal within 2 x lease of the last heal."""
        return 2 * self.lease

    def schedule(self) -> list[Fault]:
        return draw(self.seed, self.faults, Timing(lease=self.lease), kinds=self.kinds)


class Interrupted(Exception):
    """SIGTERM (or SIGINT) during a round."""


def _raise_interrupted(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signal.Signals(signum).name)


def run_round(config: RoundConfig, console: Console | None = None) -> RoundReport:
    console = console or Console()
    run_id = secrets.token_hex(3)
    topology = Topology(run_id, subnet=100 + int(run_id, 16) % 150, proxied=WORKERS)
    procs = Processes(topology, config.root / "logs")
    atexit.register(cleanup, topology.prefix)
    previous = {sig: signal.signal(sig, _raise_interrupted)
                for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        console.print(f"round {config.number} (seed {config.seed}): hosts {topology.prefix}-*, "
                      f"files in {config.root}")
        topology.build()
        stage = prepare(config.root, topology, jobs=config.jobs, app_jobs=config.app_jobs,
                        seed=config.seed, min_replicas=config.min_replicas,
                        max_lag=config.min_replicas_max_lag)
        services = Services(stage, procs, lease=config.lease, seed=config.seed,
                            replica_acks=config.replica_acks)
        services.start_redis()
        services.start_gateway()
        services.start_workers()
        services.start_operator()
        return _play(config, services, procs, console)
    finally:
        for sig in previous:  # a second Ctrl-C must not cut the teardown short
            signal.signal(sig, signal.SIG_IGN)
        procs.stop_all()
        topology.teardown()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        atexit.unregister(cleanup)


def _play(config: RoundConfig, services: Services, procs: Processes,
          console: Console) -> RoundReport:
    schedule = config.schedule()
    span = schedule[-1].heal
    campaign_id = f"rehearsal-{config.seed}-{config.number}"
    began = time.time()
    services.start_campaign(campaign_id, rate=max(1, round(config.jobs / (0.85 * span))))
    services.start_application(interval=span / max(1, config.app_jobs))
    faults = Faults(services, procs)
    windows: list[FaultWindow] = []
    for fault in schedule:
        _sleep_until(began + fault.start)
        start = time.time()
        hosts = faults.begin(fault)
        console.print(f"  {start - began:6.1f}s {fault.kind} on {', '.join(sorted(hosts))} "
                      f"for {fault.duration}s")
        if not hosts:
            raise RuntimeError(f"fault {fault} disturbed no host")
        _sleep_until(start + fault.duration)
        faults.end(fault)
        windows.append(FaultWindow(fault.kind, hosts, start, time.time()))
    services.stop_file.touch()
    last_heal = windows[-1].heal
    store = services.store()
    ids = _enqueued(services, store, campaign_id)
    deadline = last_heal + max(OBSERVE_SECONDS, 3 * config.bound)
    while collect.open_jobs(store, ids) and time.time() < deadline:
        time.sleep(1.0)
        ids = _enqueued(services, store, campaign_id)
    _wait_hooks(services, store, ids, killed=any(f.kind == "host_kill" for f in schedule),
                last_heal=last_heal)
    history = collect.history(
        store=store, hosts_by_address=services.topology.by_address(), campaign_id=campaign_id,
        ids=ids, initially_signed=services.stage.initially_signed, faults=windows,
        bound=config.bound, observed_at=time.time(), request_log=services.request_log,
        hook_file=services.hook_file)
    violations = check(history)
    report = RoundReport(round=config.number, seed=config.seed, jobs=len(ids),
                         outcomes=dict(Counter(j.state for j in history.jobs.values())),
                         rows=rows(history, violations, began), violations=violations,
                         bound=config.bound, notes=_notes(procs),
                         configuration=config.configuration)
    report.write(config.root / "report.json")
    report.print(console)
    return report


def _sleep_until(when: float) -> None:
    while (left := when - time.time()) > 0:
        time.sleep(min(left, 0.5))


def _enqueued(services: Services, store: redis.Redis, campaign_id: str) -> list[str]:
    """The jobs enqueued so far (the campaign's list, the application's entries)."""
    return collect.enqueued(store, campaign_id, services.app_file)


def _wait_hooks(services: Services, store: redis.Redis, ids: list[str], *, killed: bool,
                last_heal: float) -> None:
    """Wait for the hook of every job reported a success (a killed worker's hook runs again
    only after the hook lease)."""
    deadline = time.time() + 15.0
    if killed:
        deadline = max(deadline, last_heal + HOOK_LEASE_SECONDS + 10.0)
    while time.time() < deadline:
        jobs = collect.job_records(store, ids)
        hooked = {call.agreement for call in collect.hook_calls(services.hook_file)}
        if all(j.agreement in hooked for j in jobs.values() if j.state in SUCCESS_STATES):
            return
        time.sleep(1.0)


def _notes(procs: Processes) -> list[str]:
    """What the round saw of its processes: restarts, workers that exited by themselves."""
    notes = []
    for host in WORKERS:
        proc = procs.get(host, "worker")
        if not proc.alive():
            code = proc.popen.returncode if proc.popen else None
            notes.append(f"{host}'s worker had exited by itself (code {code}) before the end "
                         "of the round")
    for name in ("console", "flower"):
        if not procs.get("operator", name).alive():
            notes.append(f"the operator's {name} had exited")
    return notes
