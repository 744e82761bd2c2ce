"""The circuit breaker that stops the line on integration-wide (``halt``) answers.

A ``halt`` code (bad signature, partner, key profile, IP, privilege, interface closed...) means
every job would fail the same way. After ``threshold`` of them within ``window`` seconds the
breaker opens: workers stop calling the gateway and park jobs (they stay queued; nothing is
marked failed). After ``probe_after`` seconds one job is let through as a half-open probe; an
answer that is not ``halt`` closes the breaker, a ``halt`` re-opens it. ``unsign-worker breaker
reset`` closes it by hand.

Keys: ``P breaker`` (hash: state, opened_at, code, reason, halts), ``P breaker:halts`` (zset of
recent halt answers), ``P breaker:probe`` (the probe lock).
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass

import redis

from unsign_worker.store.keys import Keys
from unsign_worker.store.scripts import load
from unsign_worker.store.states import BreakerStatus

log = logging.getLogger(__name__)

RECORD_HALT = load("breaker_record_halt", libraries=("server_time",))


@dataclass(frozen=True)
class BreakerState:
    state: BreakerStatus
    code: str = ""
    reason: str = ""
    opened_at: float | None = None
    halts: int = 0

    def as_dict(self) -> dict[str, object]:
        return {"state": self.state, "code": self.code, "reason": self.reason,
                "opened_at": self.opened_at, "halts": self.halts}


class Breaker:
    """Reads and changes the breaker in Redis."""

    def __init__(self, client: redis.Redis, keys: Keys, *, threshold: int, window_seconds: float
                 ) -> None:
        self._r = client
        self._keys = keys
        self._threshold = max(1, threshold)
        self._window = window_seconds
        self._record = RECORD_HALT.register(client)

    def record_halt(self, code: str, reason: str, *, probe: bool = False) -> BreakerStatus:
        """Count one halt answer; returns ``opened`` when this one opened the breaker, else
        the breaker's state. The window and ``opened_at`` are on the Redis server's clock."""
        k = self._keys
        out = self._record(
            keys={"breaker": k.breaker, "halts": k.breaker_halts, "probe": k.breaker_probe},
            args={"window": repr(self._window), "threshold": self._threshold,
                  "code": code, "reason": reason, "member": uuid.uuid4().hex,
                  "was_probe": "1" if probe else "0"})
        result = BreakerStatus(out.decode() if isinstance(out, bytes) else str(out))
        if result == BreakerStatus.OPENED:
            log.critical("CIRCUIT BREAKER OPEN: the gateway answered %s (%s). Workers stop "
                         "calling the gateway and park jobs until `unsign-worker breaker reset` "
                         "or a successful half-open probe.", code, reason)
        return result

    def state(self) -> BreakerState:
        raw = {k.decode(): v.decode() for k, v in self._r.hgetall(self._keys.breaker).items()}
        return BreakerState(state=_status(raw.get("state", "")), code=raw.get("code", ""),
                            reason=raw.get("reason", ""),
                            opened_at=float(raw["opened_at"]) if raw.get("opened_at") else None,
                            halts=int(raw.get("halts", 0)))

    def reset(self) -> None:
        """Close the breaker by hand and forget recent halts."""
        k = self._keys
        pipe = self._r.pipeline()
        pipe.hset(k.breaker, mapping={"state": str(BreakerStatus.CLOSED),
                                      "closed_at": repr(time.time()), "code": "", "reason": ""})
        pipe.delete(k.breaker_halts, k.breaker_probe)
        pipe.execute()
        log.warning("circuit breaker reset by hand")


def _status(raw: str) -> BreakerStatus:
    """The breaker's recorded state; none (never opened) or unknown is closed."""
    return BreakerStatus.OPEN if raw == BreakerStatus.OPEN else BreakerStatus.CLOSED
