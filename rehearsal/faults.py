"""Carrying out a fault of the schedule on the hosts, and healing it.

:meth:`Faults.begin` applies a :class:`~rehearsal.nemesis.Fault` and returns the hosts it
disturbs; :meth:`Faults.end` heals it. Partitions are blackhole routes
(:meth:`~rehearsal.topology.Topology.cut`); a killed host loses every process in its
namespace and is started again at the heal.
"""

from __future__ import annotations

import glob
import signal
import threading

from rehearsal.nemesis import Fault
from rehearsal.processes import Processes
from rehearsal.proxy import write_mode
from rehearsal.services import WORKERS, Services
from rehearsal.stage import REDIS_HOSTS, SENTINEL_HOSTS

REDIS_SIDE = REDIS_HOSTS + SENTINEL_HOSTS
#: how long the proxy holds each chunk while a link is slow, milliseconds
SLOW_DELAY_MS = 1500.0
#: libfaketime (Debian's ``faketime`` package), None when not installed
FAKETIME_LIBRARY = next(iter(sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))), None)
#: how far ahead a skewed worker's clock runs, in leases
SKEW_LEASES = 1.5


def faketime_env(seconds: float) -> dict[str, str]:
    """The environment that runs a process with its wall clock ``seconds`` ahead (its monotonic
    clock untouched, so its timers stay sane)."""
    if FAKETIME_LIBRARY is None:
        raise RuntimeError("clock_skew needs libfaketime: apt-get install faketime")
    return {"LD_PRELOAD": FAKETIME_LIBRARY, "FAKETIME": f"{seconds:+.0f}s",
            "FAKETIME_DONT_FAKE_MONOTONIC": "1", "FAKETIME_NO_CACHE": "1"}


class Faults:
    def __init__(self, services: Services, procs: Processes) -> None:
        self.services = services
        self.procs = procs
        self.topology = services.topology
        #: fault -> the (a, b) pairs it cut
        self._cuts: dict[Fault, list[tuple[str, str]]] = {}
        #: fault -> the host it resolved to (``primary``, ``replica``)
        self.resolved: dict[Fault, str] = {}
        self._timers: dict[Fault, threading.Timer] = {}

    def begin(self, fault: Fault) -> frozenset[str]:
        """Apply ``fault``; returns the hosts it is about (the cut-off worker; the isolated
        primary and the worker on its side; the killed or restarted host)."""
        kind = fault.kind
        if kind == "redis_cut":
            self._cut(fault, [(fault.target, other) for other in REDIS_SIDE])
            return frozenset({fault.target})
        if kind == "gateway_cut":
            self._cut(fault, [(fault.target, "gateway")])
            return frozenset({fault.target})
        if kind == "split_brain":
            primary = self.services.primary_host()
            self.resolved[fault] = primary
            others = [h for h in REDIS_SIDE if h != primary]
            others += [w for w in WORKERS if w != fault.ally] + ["producer", "operator"]
            self._cut(fault, [(primary, other) for other in others])
            return frozenset({primary, fault.ally})
        if kind == "host_kill":
            self.topology.kill_host(fault.target)
            return frozenset({fault.target})
        if kind == "slow_gateway":
            # slow for the first half (each chunk held 1.5 s), then stalled until the heal
            control = self.services.proxy_control(fault.target)
            write_mode(control, "slow", SLOW_DELAY_MS)
            timer = threading.Timer(fault.duration / 2, write_mode, (control, "stall"))
            timer.start()
            self._timers[fault] = timer
            return frozenset({fault.target})
        if kind == "clock_skew":
            # the host's worker started again with its clock ahead (namespaces share the clock)
            worker = self.procs.get(fault.target, "worker")
            self.procs.stop(worker)
            worker.env.update(faketime_env(SKEW_LEASES * self.services.lease))
            self.procs.restart(worker)
            return frozenset({fault.target})
        if kind == "replica_restart":
            primary = self.services.primary_host()
            replica = next(h for h in REDIS_HOSTS if h != primary)
            self.resolved[fault] = replica
            self.procs.stop(self.procs.get(replica, "redis"), signal.SIGTERM)
            return frozenset({replica})
        raise ValueError(f"fault kind {kind!r} is not implemented")

    def _cut(self, fault: Fault, pairs: list[tuple[str, str]]) -> None:
        for a, b in pairs:
            self.topology.cut(a, b)
        self._cuts[fault] = pairs

    def end(self, fault: Fault) -> None:
        """Heal ``fault``: links back, the killed host or the stopped replica started again."""
        for a, b in self._cuts.pop(fault, []):
            self.topology.heal(a, b)
        if fault.kind == "slow_gateway":
            self._timers.pop(fault).cancel()
            write_mode(self.services.proxy_control(fault.target), "pass")
        if fault.kind == "host_kill":
            for proc in self.procs.on(fault.target):
                self.procs.restart(proc)
        if fault.kind == "replica_restart":
            self.procs.restart(self.procs.get(self.resolved[fault], "redis"))
        if fault.kind == "clock_skew":
            worker = self.procs.get(fault.target, "worker")
            self.procs.stop(worker)
            for name in faketime_env(0):
                worker.env.pop(name, None)
            self.procs.restart(worker)
