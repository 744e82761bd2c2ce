"""The nemesis: a schedule of faults drawn from a seed (the same seed, the same schedule).

A schedule is data: :func:`draw` makes it without touching any host, so it is tested alone,
and the round (:mod:`rehearsal.round`) carries it out through :mod:`rehearsal.faults`. Each
fault starts ``start`` seconds after the traffic began and heals ``duration`` seconds later;
faults follow each other with a gap, never overlap, so each row of the report is one fault.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from typing import Any

#: Every kind of fault, in the order of their value to the rehearsal. Only those in
#: :data:`IMPLEMENTED` are drawn; the report names both lists.
KINDS: tuple[str, ...] = (
    "redis_cut",        # a worker host cut from Redis and the Sentinels, longer than its lease
    "gateway_cut",      # a worker host cut from the gateway while its requests are out
    "split_brain",      # the primary cut from replicas, Sentinels and all but one worker
    "host_kill",        # every process of a worker host SIGKILLed, then the host restarted
    "slow_redis",       # a worker's link to Redis slowed and stalled (the TCP proxy)
    "slow_gateway",     # a worker's link to the gateway slowed, then stalled (the TCP proxy)
    "replica_restart",  # a replica stopped and started again
    "clock_skew",       # one worker host's clock ahead (libfaketime, per process)
)
IMPLEMENTED: tuple[str, ...] = (
    "redis_cut", "gateway_cut", "split_brain", "host_kill", "slow_gateway", "replica_restart",
    "clock_skew",
)
WORKERS: tuple[str, ...] = ("worker1", "worker2", "worker3")


@dataclass(frozen=True)
class Fault:
    """One fault of a schedule: what, on which host, when (seconds after the traffic began)
    and for how long (seconds)."""

    kind: str
    target: str
    start: float
    duration: float
    #: the worker host that still reaches the old primary (split brain only)
    ally: str = ""

    @property
    def heal(self) -> float:
        return self.start + self.duration

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Timing:
    """How long faults last, scaled on the workers' lease (seconds)."""

    lease: float
    first_at: float = 8.0
    gap: tuple[float, float] = (4.0, 8.0)

    def duration(self, kind: str, rand: random.Random) -> float:
        lease = self.lease
        spans = {
            # longer than the lease, so the cut-off worker's claims expire while it holds them
            "redis_cut": (1.5 * lease, 2.5 * lease),
            "gateway_cut": (0.8 * lease, 1.5 * lease),
            # long enough for the Sentinels to fail over while the old primary takes writes
            "split_brain": (1.2 * lease, 2.0 * lease),
            # how long the killed host stays down before it starts again
            "host_kill": (0.3 * lease, 0.8 * lease),
            "slow_redis": (lease, 2.0 * lease),
            "slow_gateway": (lease, 2.0 * lease),
            "replica_restart": (0.2 * lease, 0.5 * lease),
            "clock_skew": (lease, 2.0 * lease),
        }
        low, high = spans[kind]
        return round(rand.uniform(low, high), 1)


def draw(seed: int, count: int, timing: Timing, *,
         kinds: tuple[str, ...] = IMPLEMENTED) -> list[Fault]:
    """``count`` faults drawn from ``kinds`` with ``random.Random(seed)``: the same arguments
    always give the same schedule. Each kind is drawn once before any is drawn twice.

    Raises:
        ValueError: ``count`` below 1, or a kind that is unknown or not implemented.
    """
    if count < 1:
        raise ValueError(f"count: at least one fault per round, not {count}")
    for kind in kinds:
        if kind not in IMPLEMENTED:
            known = "not implemented" if kind in KINDS else "unknown"
            raise ValueError(f"kinds: {kind!r} is {known} (implemented: {', '.join(IMPLEMENTED)})")
    rand = random.Random(seed)
    faults: list[Fault] = []
    at = timing.first_at
    pool: list[str] = []
    for _ in range(count):
        if not pool:
            pool = list(kinds)
            rand.shuffle(pool)
        kind = pool.pop()
        target, ally = _target(kind, rand)
        duration = timing.duration(kind, rand)
        faults.append(Fault(kind=kind, target=target, start=round(at, 1), duration=duration,
                            ally=ally))
        at += duration + rand.uniform(*timing.gap)
    return faults


def _target(kind: str, rand: random.Random) -> tuple[str, str]:
    """The host a fault hits. The primary and the replicas change with failovers, so those
    faults name a role (``primary``, ``replica``), resolved when the fault begins."""
    if kind == "split_brain":
        return "primary", rand.choice(WORKERS)
    if kind == "replica_restart":
        return "replica", ""
    return rand.choice(WORKERS), ""
