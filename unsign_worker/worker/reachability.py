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

    def answered(self) -> None:
        """The gateway answered a request (whatever it said): the faults so far were not a cut.
        While unreachable, only a probe ends the outage (:meth:`probe_succeeded`)."""
        with self._lock:
            self._faults.clear()

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
