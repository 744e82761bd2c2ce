"""The report of a round: one row per fault (what, where, when, jobs in flight when it began,
violations of each invariant, seconds until every job was terminal after the heal), printed as
a table and written as JSON. Rows are computed by pure functions from the history.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from rehearsal.checker import INVARIANTS, Violation
from rehearsal.nemesis import IMPLEMENTED, KINDS
from rehearsal.records import FaultWindow, History, JobRecord

NO_FAULT = "(before any fault)"


@dataclass
class FaultRow:
    fault: str
    hosts: str
    #: seconds after the traffic began
    at: float
    duration: float
    jobs_in_flight: int
    requests_in_flight: int
    violations: dict[str, int] = field(default_factory=lambda: dict.fromkeys(INVARIANTS, 0))
    #: seconds from the heal until every job in flight then was terminal (None: never)
    terminal_after_heal: float | None = None


def attribute(violation: Violation, faults: Sequence[FaultWindow]) -> int | None:
    """The index of the fault a violation happened during or after (the latest begun)."""
    begun = [i for i, f in enumerate(faults) if f.start <= violation.at]
    return begun[-1] if begun else None


def first_sent(history: History) -> dict[str, float]:
    """Agreement -> when the gateway first received a request for it."""
    found: dict[str, float] = {}
    for request in history.requests:
        if request.agreement and request.received_at < found.get(request.agreement, float("inf")):
            found[request.agreement] = request.received_at
    return found


def in_flight(history: History, sent: dict[str, float], at: float) -> list[JobRecord]:
    """Jobs started (their agreement sent) by ``at`` and not terminal then: a campaign's jobs
    waiting for their turn under its rate are not in flight."""
    return [job for job in history.jobs.values()
            if sent.get(job.agreement, float("inf")) <= at
            and (job.finished_at is None or job.finished_at > at)]


def terminal_after(history: History, sent: dict[str, float], heal: float) -> float | None:
    """Seconds after ``heal`` until every job in flight at the heal was terminal (0 when none
    was); None when one never was."""
    latest = heal
    for job in in_flight(history, sent, heal):
        if job.finished_at is None:
            return None
        latest = max(latest, job.finished_at)
    return round(latest - heal, 1)


def rows(history: History, violations: Sequence[Violation], began: float) -> list[FaultRow]:
    """One row per fault (plus one for violations before the first fault, if any)."""
    sent = first_sent(history)
    out = []
    for fault in history.faults:
        requests = sum(1 for r in history.requests
                       if r.received_at <= fault.start < r.answered_at)
        out.append(FaultRow(fault=fault.kind, hosts=",".join(sorted(fault.hosts)),
                            at=round(fault.start - began, 1),
                            duration=round(fault.heal - fault.start, 1),
                            jobs_in_flight=len(in_flight(history, sent, fault.start)),
                            requests_in_flight=requests,
                            terminal_after_heal=terminal_after(history, sent, fault.heal)))
    early = FaultRow(fault=NO_FAULT, hosts="", at=0.0, duration=0.0, jobs_in_flight=0,
                     requests_in_flight=0)
    for violation in violations:
        index = attribute(violation, history.faults)
        row = early if index is None else out[index]
        row.violations[violation.invariant] += 1
    return ([early] if any(early.violations.values()) else []) + out


@dataclass
class RoundReport:
    round: int
    seed: int
    jobs: int
    outcomes: dict[str, int]
    rows: list[FaultRow]
    violations: list[Violation]
    bound: float
    notes: list[str] = field(default_factory=list)
    #: the round's Redis and worker settings (min-replicas-to-write, ..., UNSIGN_REPLICA_ACKS)
    configuration: dict[str, int] = field(default_factory=dict)

    @property
    def totals(self) -> dict[str, int]:
        return {k: sum(r.violations[k] for r in self.rows) for k in INVARIANTS}

    @property
    def passed(self) -> bool:
        return not self.violations

    def as_dict(self) -> dict[str, Any]:
        return {"round": self.round, "seed": self.seed, "jobs": self.jobs,
                "outcomes": self.outcomes, "bound_seconds": self.bound,
                "configuration": self.configuration,
                "faults_implemented": list(IMPLEMENTED),
                "faults_not_implemented": [k for k in KINDS if k not in IMPLEMENTED],
                "invariants": INVARIANTS, "totals": self.totals, "passed": self.passed,
                "rows": [asdict(r) for r in self.rows],
                "violations": [asdict(v) for v in self.violations], "notes": self.notes}

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(self.as_dict(), indent=2, ensure_ascii=False) + "\n",
                        encoding="utf-8")

    def print(self, console: Console | None = None, *, examples: int = 3) -> None:
        console = console or Console()
        title = (f"round {self.round} (seed {self.seed}): {self.jobs} jobs, "
                 f"{'PASSED' if self.passed else 'VIOLATIONS'}")
        if self.configuration:
            title += " (" + ", ".join(f"{k} {v}" for k, v in self.configuration.items()) + ")"
        table = Table(title=title)
        for column in ("fault", "hosts", "at s", "for s", "jobs in flight",
                       "requests in flight", *INVARIANTS, "terminal after heal s"):
            table.add_column(column, justify="left" if column in ("fault", "hosts") else "right")
        for row in self.rows:
            after = ("" if row.fault == NO_FAULT else "never" if row.terminal_after_heal is None
                     else f"{row.terminal_after_heal}")
            table.add_row(row.fault, row.hosts, f"{row.at}", f"{row.duration}",
                          str(row.jobs_in_flight), str(row.requests_in_flight),
                          *(str(row.violations[k]) for k in INVARIANTS), after)
        console.print(table)
        console.print("outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(
            self.outcomes.items())))
        for key in INVARIANTS:
            found = [v for v in self.violations if v.invariant == key]
            if found:
                console.print(f"({key}) {INVARIANTS[key]}: {len(found)} violations, e.g.")
                for violation in found[:examples]:
                    console.print(f"    {violation.subject}: {violation.detail}")
        missing = [k for k in KINDS if k not in IMPLEMENTED]
        console.print(f"faults the nemesis draws from: {', '.join(IMPLEMENTED)}"
                      + (f"; not implemented: {', '.join(missing)}" if missing else ""))
        for note in self.notes:
            console.print(f"note: {note}")
