"""Waiting out a Redis or broker outage: back off, say so once, carry on.

Every long-running loop (the worker's sweeper and inbox thread, ``campaign run`` watching, the
client's ``wait``, Flower's event capture) calls Redis again and again; a restart or a failover
makes each call fail for a while. :class:`Outage` turns that into one line when it starts
("Redis unavailable since 03:12:04 UTC (ConnectionError: ...), retrying"), one when it ends,
and a capped exponential backoff in between, instead of a traceback per attempt or an exit.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

import redis
from kombu.exceptions import OperationalError

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Errors that mean "the store or the broker is away for now", not "this call is wrong":
#: connection refused or reset, timeouts, a replica still loading its data after a restart
#: (BusyLoadingError is a ConnectionError), a demoted master after a failover (READONLY), no
#: master known to the sentinels yet (MasterNotFoundError is a ConnectionError), and kombu's
#: wrapper of the same for the broker.
OUTAGE_ERRORS: tuple[type[BaseException], ...] = (
    redis.ConnectionError, redis.TimeoutError, redis.ReadOnlyError, OperationalError,
    ConnectionError, TimeoutError)
#: Backoff between attempts: first delay and cap, seconds.
BACKOFF_FIRST_SECONDS = 0.5
BACKOFF_CAP_SECONDS = 5.0


def _clock(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at))


class Outage:
    """The state of one outage as seen by one loop: when it began, the next delay."""

    def __init__(self, what: str = "Redis", say: Callable[[str], None] | None = None, *,
                 first: float = BACKOFF_FIRST_SECONDS, cap: float = BACKOFF_CAP_SECONDS) -> None:
        self.what = what
        self._say = say or log.warning
        self._first = first
        self._cap = cap
        self.since: float | None = None
        self._attempts = 0

    @property
    def active(self) -> bool:
        return self.since is not None

    def failed(self, exc: BaseException) -> float:
        """Note a failed attempt; the first of an outage is announced. Returns the delay."""
        if self.since is None:
            self.since = time.time()
            self._say(f"{self.what} unavailable since {_clock(self.since)} "
                      f"({type(exc).__name__}: {str(exc)[:160]}), retrying")
        self._attempts = min(self._attempts + 1, 32)  # the delay is capped long before
        delay = min(self._cap, self._first * 2 ** (self._attempts - 1))
        return delay * (0.8 + 0.4 * random.random())

    def recovered(self) -> None:
        """A call succeeded: the end of an outage is announced."""
        if self.since is not None:
            self._say(f"{self.what} available again after {time.time() - self.since:.0f}s")
        self.since = None
        self._attempts = 0


def ride_out(call: Callable[[], T], outage: Outage, *, deadline: float | None = None,
             sleep: Callable[[float], object] = time.sleep) -> T:
    """``call()`` until it succeeds, waiting out outages (announced once by ``outage``).

    ``deadline`` (``time.monotonic()`` value): give up and re-raise the outage's error once the
    next attempt would fall after it.
    """
    while True:
        try:
            result = call()
        except OUTAGE_ERRORS as exc:
            delay = outage.failed(exc)
            if deadline is not None and time.monotonic() + delay > deadline:
                raise
            sleep(delay)
            continue
        outage.recovered()
        return result
