"""The success hook's record ``P hook:<identity>`` and the due set ``P hooks``.

The settle script creates the record (``pending``) in the step that marks the agreement
unsigned; a run claims it (``running``, with a lease: ``store/lua/hook_claim.lua``) and marks it
``failed`` (due again later) or ``done`` (never run again). The runner is
:class:`unsign_worker.worker.hooks.HookRunner`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import redis

from unsign_worker.store.clock import server_now
from unsign_worker.store.keys import Keys
from unsign_worker.store.scripts import load

CLAIM_HOOK = load("hook_claim", libraries=("server_time",))


class HookClaimStatus(StrEnum):
    """The answers of the hook claim script."""

    CLAIMED = "claimed"
    MISSING = "missing"
    DONE = "done"
    BUSY = "busy"


@dataclass(frozen=True)
class HookClaim:
    status: HookClaimStatus
    #: claimed: this run's attempt number and the hook's event
    attempts: int = 0
    event: dict[str, Any] | None = None


class HookRecords:
    """Claims and marks success hook records."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._r = client
        self._keys = keys
        self._claim = CLAIM_HOOK.register(client)

    def claim(self, identity: str, *, lease_seconds: float) -> HookClaim:
        """Take the hook of ``identity`` for one run of ``lease_seconds`` (on the Redis
        server's clock) unless it is done, missing or running under a live lease."""
        k = self._keys
        res = self._claim(keys={"hook": k.hook(identity), "hooks": k.hooks},
                          args={"lease_seconds": repr(lease_seconds), "identity": identity})
        status = HookClaimStatus(res[0].decode() if isinstance(res[0], bytes) else res[0])
        if status != HookClaimStatus.CLAIMED:
            return HookClaim(status)
        return HookClaim(status, attempts=int(res[1]), event=json.loads(res[2]))

    def due(self, now: float, *, limit: int) -> list[str]:
        """The identities whose hook is due by ``now`` (the Redis server's time: pending past
        its due time, failed past its retry time, or running past its lease), at most
        ``limit``."""
        return [raw.decode() for raw in self._r.zrangebyscore(self._keys.hooks, "-inf", now,
                                                              start=0, num=limit)]

    def postpone(self, identity: str, until: float) -> None:
        """The hook of ``identity`` is not due again before ``until`` (the Redis server's time;
        a run was sent)."""
        self._r.zadd(self._keys.hooks, {identity: until})

    def mark_failed(self, identity: str, *, error: str, retry_in: float) -> None:
        """The run failed: keep its error; the hook is due again ``retry_in`` seconds from now
        on the Redis server's clock."""
        k = self._keys
        retry_at = server_now(self._r) + retry_in
        pipe = self._r.pipeline()
        pipe.hset(k.hook(identity), mapping={"state": "failed", "last_error": error,
                                             "lease_until": repr(retry_at)})
        pipe.zadd(k.hooks, {identity: retry_at})
        pipe.execute()

    def mark_done(self, identity: str) -> None:
        """The run succeeded: the hook never runs again."""
        k = self._keys
        pipe = self._r.pipeline()
        pipe.hset(k.hook(identity), mapping={"state": "done", "done_at": repr(time.time())})
        pipe.zrem(k.hooks, identity)
        pipe.execute()
