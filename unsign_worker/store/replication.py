"""Acknowledged means replicated: the writes the product relies on, confirmed by ``WAIT``.

Redis replication is asynchronous: a primary that a partition cut from its replicas and
Sentinels keeps taking writes until it is demoted, and loses them when it rejoins as a replica.
With ``UNSIGN_REPLICA_ACKS`` ≥ 1 a write that something is about to act on (a claim before the
gateway is called, an outcome before the hook runs and the message is acknowledged, a hook's
``running`` record before the merchant's step) is followed by ``WAIT <acks> <ms>`` on the same
connection (:meth:`Replication.add_wait`, in the same pipeline). When fewer replicas confirm,
the write is **held** (:meth:`Replication.hold`): nothing acts on it; ``WAIT`` is asked again
with a backoff, each time after a probe write (``P replica:probe``) on the connection used, so
that ``WAIT`` measures a point of the replication stream past every earlier write, and after
reading back each held write from the primary now answering. A write found gone there (a
failover lost it) or still unconfirmed at the deadline is reported unconfirmed, and the caller
does not act on it: the job's lease brings it back and it is redone from the gateway's state.

A primary that refuses writes (``NOREPLICAS``, ``READONLY``...) is waited out the same way
(:mod:`unsign_worker.store.refusals` makes those refusals connection errors).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import redis

from unsign_worker.store.keys import Keys
from unsign_worker.store.outage import OUTAGE_ERRORS, Outage

log = logging.getLogger(__name__)

#: Backoff between two confirmations of a held write: first delay and cap, seconds.
HOLD_FIRST_SECONDS = 0.2
HOLD_CAP_SECONDS = 5.0
#: The probe key's expiry, milliseconds.
PROBE_TTL_MS = 60_000


class ReplicaShortfall(Exception):
    """Fewer replicas than required confirmed a write in time."""


@dataclass(frozen=True)
class Written:
    """One held write, as it can be read back: ``field`` of hash ``key`` equals ``expected``
    while the write is on the primary."""

    key: str
    field: str
    expected: str


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value or "")


class Replication:
    """Confirms writes on ``acks`` replicas; ``acks`` 0 confirms every write at once."""

    def __init__(self, client: redis.Redis, keys: Keys, *, acks: int, wait_ms: int,
                 sleep: Callable[[float], object] = time.sleep) -> None:
        self._r = client
        self._keys = keys
        self.acks = acks
        self.wait_ms = wait_ms
        self._sleep = sleep

    @property
    def enabled(self) -> bool:
        return self.acks > 0

    def add_wait(self, pipe: Any) -> None:
        """Append ``WAIT`` to ``pipe`` (its last reply is then the replicas that confirmed)."""
        pipe.execute_command("WAIT", self.acks, self.wait_ms)

    def confirmed(self, acked: Any) -> bool:
        return int(acked) >= self.acks

    def hold(self, written: Sequence[Written], *, deadline: float, what: str,
             waited: bool = True) -> list[bool]:
        """Ask again until ``acks`` replicas confirm (then: each write, still on the primary?)
        or ``deadline`` (a ``time.monotonic()`` value; then: all unconfirmed). ``waited``: a
        ``WAIT`` after the writes already came back short (else the first ask is silent). One
        line when the hold starts, one when it ends."""
        if not written:
            return []
        outage = Outage(f"Redis replicas (holding {what} until {self.acks} replica(s) "
                        "confirm)", first=HOLD_FIRST_SECONDS, cap=HOLD_CAP_SECONDS)
        if waited:
            outage.failed(ReplicaShortfall(f"fewer than {self.acks} replica(s) confirmed "
                                           f"within {self.wait_ms} ms"))
        while True:
            try:
                found, acked = self._read_back(written)
            except OUTAGE_ERRORS as exc:
                delay = outage.failed(exc)
            else:
                if self.confirmed(acked):
                    outage.recovered()
                    return found
                delay = outage.failed(ReplicaShortfall(f"{acked} of {self.acks}"))
            if time.monotonic() + delay > deadline:
                log.warning("gave up holding %s after %.0fs: not acted on; the job's lease "
                            "brings it back", what, time.time() - (outage.since or time.time()))
                return [False] * len(written)
            self._sleep(delay)

    def _read_back(self, written: Sequence[Written]) -> tuple[list[bool], int]:
        pipe = self._r.pipeline(transaction=False)
        pipe.set(self._keys.replica_probe, "1", px=PROBE_TTL_MS)
        for item in written:
            pipe.hget(item.key, item.field)
        self.add_wait(pipe)
        out = pipe.execute()
        found = [_text(value) == item.expected for value, item in zip(out[1:-1], written,
                                                                       strict=True)]
        return found, int(out[-1])
