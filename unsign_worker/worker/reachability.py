"""Whether this worker process reaches the gateway, judged from its own requests.

A host whose path to the gateway is cut (a route blackholed, a firewall, a broken NAT) sees
every request fail with a network fault: connect or read timeout, refused, reset, TLS
handshake. Left alone, such a worker keeps taking jobs and spends a read timeout on each, while
other hosts could have done them in milliseconds. So each worker process keeps a
:class:`Reachability`:

- an answer of any kind (success, error code, HTTP 5xx) proves the gateway reachable and clears
  the count of faults;
- ``threshold`` network faults with no answer between them, within ``window_seconds``, declare
  the gateway unreachable *from this host*: a single slow answer never does;
- so do requests that wait with no answer at all for ``STALL_SECONDS`` (:meth:`stalled`) when a
  handshake with the gateway then fails (:meth:`declare`): a blackholed path is found in a few
  seconds instead of a read timeout, and a slow gateway that still shakes hands is left alone;
- while unreachable, the worker takes no job (:mod:`unsign_worker.worker.gateway_watch` stops
  its consumer and probes the gateway with a handshake); only a successful probe makes it
  reachable again.

Unlike the circuit breaker (:mod:`unsign_worker.store.breaker`), which stops every worker on an
integration-wide answer, this is per process and kept in memory: a host that cannot reach the
gateway steps aside and the others carry on. Pure: the caller passes the time.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

#: Network faults in a row (no answer between them) that make the gateway unreachable.
FAULTS_TO_UNREACHABLE = 3
#: Seconds within which those faults must fall.
FAULT_WINDOW_SECONDS = 60.0
#: Seconds without any answer while a request waits, after which the gateway is probed (a cut
#: path is then found by a failed handshake, before the requests' own read timeouts).
STALL_SECONDS = 3.0


@dataclass(frozen=True)
class Outage:
    """The gateway is unreachable from this worker: since when (epoch seconds) and why."""

    since: float
    cause: str


class Reachability:
    """The gateway's reachability from this process; safe to share between threads."""

    def __init__(self, host: str, *, threshold: int = FAULTS_TO_UNREACHABLE,
                 window_seconds: float = FAULT_WINDOW_SECONDS) -> None:
        if threshold < 1:
            raise ValueError("Reachability.threshold must be at least 1")
        if not window_seconds > 0:
            raise ValueError("Reachability.window_seconds must be positive")
        #: the gateway's host name, for log lines
        self.host = host
        self.threshold = threshold
        self.window_seconds = window_seconds
        self._faults: deque[tuple[float, str]] = deque()
        self._outage: Outage | None = None
        #: requests waiting for an answer: token -> when sent; the last answer's time
        self._waiting: dict[int, float] = {}
        self._next_token = 0
        self._last_answer = 0.0
        self._lock = threading.Lock()
        #: set when the gateway becomes unreachable; cleared when it is reachable again
        self.tripped = threading.Event()

    def __repr__(self) -> str:
        return (f"Reachability(host={self.host!r}, threshold={self.threshold}, "
                f"window_seconds={self.window_seconds:g}, outage={self._outage!r})")

    @property
    def outage(self) -> Outage | None:
        """The current outage, or None while the gateway is reachable."""
        return self._outage

    @property
    def reachable(self) -> bool:
        return self._outage is None

    def answered(self, now: float) -> None:
        """The gateway answered a request (whatever it said): the faults so far were not a cut.
        While unreachable, only a probe ends the outage (:meth:`probe_succeeded`)."""
        with self._lock:
            self._faults.clear()
            self._last_answer = max(self._last_answer, now)

    def sending(self, now: float) -> int:
        """A request is about to be sent; returns the token to give :meth:`done`."""
        with self._lock:
            self._next_token += 1
            self._waiting[self._next_token] = now
            return self._next_token

    def done(self, token: int) -> None:
        """The request of ``token`` ended (answered or failed)."""
        with self._lock:
            self._waiting.pop(token, None)

    def stalled(self, now: float, after: float = STALL_SECONDS) -> float | None:
        """Seconds the process has waited with no answer, if requests wait and none was
        answered for at least ``after`` seconds (and the gateway is deemed reachable); else
        None."""
        with self._lock:
            if self._outage is not None or not self._waiting:
                return None
            quiet = now - max(min(self._waiting.values()), self._last_answer)
        return quiet if quiet >= after else None

    def declare(self, cause: str, now: float) -> Outage | None:
        """The gateway is unreachable (a stall, then a failed handshake). Returns the outage,
        or None if one was already declared."""
        with self._lock:
            if self._outage is not None:
                return None
            self._outage = Outage(since=now, cause=cause)
            self._faults.clear()
            self.tripped.set()
            return self._outage

    def failed(self, cause: str, now: float) -> Outage | None:
        """A request got no answer (``cause``: the fault, e.g. "connect timeout"). Returns the
        outage this fault began, else None (not enough faults yet, or already unreachable)."""
        with self._lock:
            if self._outage is not None:
                return None
            self._faults.append((now, cause))
            while self._faults and now - self._faults[0][0] > self.window_seconds:
                self._faults.popleft()
            if len(self._faults) < self.threshold:
                return None
            self._outage = Outage(since=self._faults[0][0], cause=cause)
            self._faults.clear()
            self.tripped.set()
            return self._outage

    def probe_succeeded(self, now: float) -> float:
        """A handshake with the gateway completed: reachable again. Returns how long the
        outage lasted (seconds; 0 if there was none)."""
        with self._lock:
            outage, self._outage = self._outage, None
            self._faults.clear()
            self.tripped.clear()
        return 0.0 if outage is None else max(0.0, now - outage.since)
