"""Job states and outcomes. A job is in exactly one state; terminal states never change
except by an operator's requeue from the dead-letter queue."""

from __future__ import annotations

from enum import StrEnum


class JobState(StrEnum):
    QUEUED = "queued"
    IN_FLIGHT = "in_flight"
    RETRYING = "retrying"
    PARKED = "parked"
    UNSIGNED = "unsigned"
    ALREADY_UNSIGNED = "already_unsigned"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"
    DEAD_LETTERED = "dead_lettered"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATES

    @property
    def is_success(self) -> bool:
        return self in (JobState.UNSIGNED, JobState.ALREADY_UNSIGNED)


TERMINAL_STATES = frozenset({
    JobState.UNSIGNED,
    JobState.ALREADY_UNSIGNED,
    JobState.DUPLICATE,
    JobState.REJECTED,
    JobState.DEAD_LETTERED,
    JobState.CANCELLED,
})

class CampaignState(StrEnum):
    """A campaign's state (``P campaign:<id>``, field ``state``)."""

    RUNNING = "running"
    PAUSED = "paused"
    CANCELLED = "cancelled"
    DONE = "done"


class BreakerStatus(StrEnum):
    """The circuit breaker's state (``P breaker``, field ``state``)."""

    CLOSED = "closed"
    OPEN = "open"
    #: the answer of ``Breaker.record_halt`` when this halt opened the breaker
    OPENED = "opened"


#: Terminal states that count as a failure for exit codes and alerts.
FAILURE_STATES = frozenset({JobState.REJECTED, JobState.DEAD_LETTERED})
