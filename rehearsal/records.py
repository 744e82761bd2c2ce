"""The records a round is judged from, as plain values: the gateway's own log of requests, the
calls of the test hook, the job records and campaign counters read at the end, and the faults
as they were carried out. :mod:`rehearsal.checker` reads only these.

Times are epoch seconds (every host of a round shares the machine's clock).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: Job states that report the agreement unsigned, and those that report a failure.
SUCCESS_STATES = frozenset({"unsigned", "already_unsigned"})
FAILURE_STATES = frozenset({"rejected", "dead_lettered"})
TERMINAL_STATES = SUCCESS_STATES | FAILURE_STATES | {"duplicate", "cancelled"}


@dataclass(frozen=True)
class GatewayRequest:
    """One line of the gateway's request log (``unsign-worker emulator --request-log``)."""

    received_at: float
    answered_at: float
    #: the worker host that sent it (the log's peer address, named by the topology)
    peer: str
    service: str
    #: the emulator's id of the agreement the request reached ("" if none)
    agreement: str
    #: ``T``, an error code, or "" when no answer was written
    code: str
    #: ``answer``, or the transport fault that replaced it (``LOST_ANSWER``, ``RESET``...)
    action: str
    #: this request unsigned the agreement
    applied: bool

    @classmethod
    def from_log(cls, entry: Mapping[str, Any], peer: str) -> GatewayRequest:
        return cls(received_at=float(entry["received_at"]),
                   answered_at=float(entry["answered_at"]), peer=peer,
                   service=str(entry.get("service", "")),
                   agreement=str(entry.get("agreement", "")), code=str(entry.get("code", "")),
                   action=str(entry.get("action", "answer")),
                   applied=bool(entry.get("applied", False)))


@dataclass(frozen=True)
class HookCall:
    """One call of the success hook, as the hook itself wrote it on the producer host."""

    key: str
    job_id: str
    agreement: str
    at: float


@dataclass(frozen=True)
class JobRecord:
    """A job's record as read at the end (``agreement`` is the job's reference, which the
    round sets to the emulator's agreement id)."""

    job_id: str
    state: str
    agreement: str
    campaign: str = ""
    created_at: float | None = None
    finished_at: float | None = None


@dataclass(frozen=True)
class FaultWindow:
    """A fault as carried out: which hosts it disturbed and when (epoch seconds)."""

    kind: str
    hosts: frozenset[str]
    start: float
    heal: float


@dataclass
class History:
    """Everything one round recorded."""

    requests: list[GatewayRequest]
    hooks: list[HookCall]
    jobs: dict[str, JobRecord]
    #: every job id a producer was told was enqueued (campaign job lists, the application's)
    enqueued: list[str]
    #: campaign id -> outcome counters (``P campaign:<id>:counts``)
    campaign_counts: dict[str, dict[str, int]]
    #: agreements that were signed at the gateway when the round began
    initially_signed: frozenset[str]
    faults: list[FaultWindow]
    #: the bound of invariant (a), seconds after the last heal
    bound: float
    #: when the records were read
    observed_at: float

    @property
    def last_heal(self) -> float:
        return max((f.heal for f in self.faults), default=0.0)
