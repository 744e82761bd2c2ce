"""The one retry policy: a pure function from a job's retry state and the error to what happens
next (in the spirit of dramatiq's ``Retries`` middleware).

:meth:`RetryPolicy.decide` answers, for a retryable failure, one of

- ``WAIT_IN_TASK`` (sleep this long, then send the ORIGINAL parameters again, within the short
  in-task budget of this delivery),
- ``HAND_BACK`` (give the job back to the broker with this countdown: the worker slot is freed),
- ``DEAD_LETTER`` (the job has been failing for longer than the deadline: ``retry_exhausted``).

The state it reads (:class:`RetryState`) comes from the job's record, not from the message or
the broker: the number of times the job was already handed back and the time of its first
failure are written by the settle script and returned by every claim, so a single job, a job
of a campaign batch and a job re-published by the sweeper all continue the same count.
No sleeping and no clock here: the caller passes ``now`` and the random source.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from unsign_worker.protocol.exceptions import RetryableError

#: Shortest broker countdown (RabbitMQ's delayed delivery refuses less than a second).
MIN_COUNTDOWN_SECONDS = 1.0


def backoff_seconds(attempt: int, *, base: float, cap: float, rand: Callable[[], float]) -> float:
    """Full-jitter exponential backoff: uniform in [0, min(cap, base * 2**(attempt-1))].

    Parameters:
        attempt: 1 for the first retry.
        base: first step, seconds.
        cap: largest step, seconds.
        rand: a source of floats in [0, 1) (injected for tests).
    """
    if attempt < 1:
        raise ValueError("attempt starts at 1")
    ceiling = min(cap, base * (2 ** min(attempt - 1, 62)))
    return ceiling * rand()


class Step(StrEnum):
    """What a retryable failure leads to."""

    WAIT_IN_TASK = "wait_in_task"
    HAND_BACK = "hand_back"
    DEAD_LETTER = "dead_letter"


@dataclass(frozen=True)
class Verdict:
    """The policy's answer: the step and, for a wait or a hand-back, its length in seconds."""

    step: Step
    seconds: float = 0.0


@dataclass(frozen=True)
class RetryState:
    """Where a failing job stands, as its record and the current delivery know it."""

    #: failed attempts so far in THIS delivery (1 after the first failure)
    in_task_failures: int
    #: times the job was already handed back to the broker (from the job record)
    handbacks: int
    #: epoch seconds of the job's first failure (from the record, else this failure)
    first_failure_at: float
    #: epoch seconds at which this delivery made its first attempt
    delivery_started_at: float


@dataclass(frozen=True)
class RetryPolicy:
    """How a retryable job is retried; values checked when built. All durations in seconds."""

    intask_budget_seconds: float
    intask_base_seconds: float
    intask_cap_seconds: float
    countdown_base_seconds: float
    countdown_cap_seconds: float
    deadline_seconds: float

    def __post_init__(self) -> None:
        for name in ("intask_budget_seconds", "intask_base_seconds", "intask_cap_seconds",
                     "countdown_base_seconds", "countdown_cap_seconds", "deadline_seconds"):
            if getattr(self, name) < 0:
                raise ValueError(f"RetryPolicy.{name} must not be negative")
        if self.countdown_cap_seconds < self.countdown_base_seconds:
            raise ValueError("RetryPolicy.countdown_cap_seconds must be >= the base")

    def decide(self, state: RetryState, error: BaseException, now: float,
               rand: Callable[[], float] = random.random) -> Verdict:
        """What to do after ``error``; see the module docstring. Any error that is not a
        :class:`RetryableError` is not this policy's to retry: it dead-letters."""
        if not isinstance(error, RetryableError):
            return Verdict(Step.DEAD_LETTER)
        if now - state.first_failure_at >= self.deadline_seconds:
            return Verdict(Step.DEAD_LETTER)
        left = self.intask_budget_seconds - (now - state.delivery_started_at)
        wait = self.intask_wait_seconds(state.in_task_failures, rand)
        if wait < left:
            return Verdict(Step.WAIT_IN_TASK, wait)
        countdown = self.countdown_seconds(state.handbacks + 1, rand)
        to_deadline = state.first_failure_at + self.deadline_seconds - now
        return Verdict(Step.HAND_BACK,
                       max(MIN_COUNTDOWN_SECONDS, min(countdown, max(0.0, to_deadline) + 0.5)))

    def intask_wait_seconds(self, failure: int, rand: Callable[[], float] = random.random
                            ) -> float:
        """The wait after in-task failure number ``failure`` (1-based): the exponential step
        ``base * 2**(failure-1)`` plus up to one ``base`` of jitter, capped."""
        step = self.intask_base_seconds * (2 ** min(max(failure, 1) - 1, 30))
        return min(self.intask_cap_seconds, step + self.intask_base_seconds * rand())

    def countdown_seconds(self, handback: int, rand: Callable[[], float] = random.random
                          ) -> float:
        """Countdown of hand-back number ``handback`` (1-based): at least half the exponential
        step, plus jitter, so retries spread but still back off."""
        step = min(self.countdown_cap_seconds,
                   self.countdown_base_seconds * (2 ** min(handback - 1, 30)))
        return step / 2 + backoff_seconds(handback, base=self.countdown_base_seconds / 2,
                                          cap=self.countdown_cap_seconds / 2, rand=rand)
