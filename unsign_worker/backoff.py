"""Backoff as pure functions and a validated policy. No sleeping here: callers sleep or schedule.

Two tiers, never both for the same wait:
- in the task, tenacity retries a retryable answer for a short bounded time
  (``intask_wait``), re-sending the ORIGINAL parameters;
- past that budget the job goes back to the broker with a countdown (``countdown_seconds``), up
  to a total deadline, then to the dead-letter queue as ``retry_exhausted``.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from tenacity import wait_exponential_jitter


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


@dataclass(frozen=True)
class RetryPolicy:
    """How a retryable job is retried; values checked when built."""

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

    def intask_wait(self) -> wait_exponential_jitter:
        """tenacity wait strategy for in-task retries."""
        return wait_exponential_jitter(multiplier=self.intask_base_seconds,
                                       max=self.intask_cap_seconds, jitter=self.intask_base_seconds)

    def first_intask_wait(self, rand: Callable[[], float] = random.random) -> float:
        """The wait before the second in-task attempt: the first step, with jitter."""
        return self.intask_base_seconds * (1 + rand())

    def countdown_seconds(self, broker_retry: int, rand: Callable[[], float] = random.random
                          ) -> float:
        """Countdown before broker retry number ``broker_retry`` (1-based): at least half the
        exponential step, plus jitter, so retries spread but still back off."""
        step = min(self.countdown_cap_seconds,
                   self.countdown_base_seconds * (2 ** min(broker_retry - 1, 30)))
        return step / 2 + backoff_seconds(broker_retry, base=self.countdown_base_seconds / 2,
                                          cap=self.countdown_cap_seconds / 2, rand=rand)

    def exhausted(self, first_failure_at: float, now: float) -> bool:
        """True once the job has been failing for longer than the deadline."""
        return now - first_failure_at >= self.deadline_seconds
