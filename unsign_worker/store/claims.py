"""Claiming an agreement and settling a job, each in one atomic Lua script (one round trip).

The agreement hash (``P agreement:<identity>``) is the dedup record:

- ``holder``: the job that holds or unsigned it; ``state``: ``in_flight`` (a delivery is sending),
  ``held`` (the holder waits for a broker retry or is parked), ``released`` (the holder ended
  without unsigning) or ``unsigned``; ``lease_until``: when an in-flight or held claim expires,
  so a crashed worker blocks nothing; ``token``: the fencing token, incremented by every claim.

``claim`` decides, atomically, what one delivery of a job may do:

- ``claimed``: proceed; a new fencing token is returned, and ``reached`` says whether an earlier
  attempt of this job may have reached the gateway (an answer was lost, or a delivery crashed
  mid-flight: its ``open_attempt`` mark was never cleared);
- ``duplicate``: another job unsigned this agreement or holds it under a live lease;
- ``busy``: another delivery of the same job holds a live lease (a redelivered copy): drop it
  (the holder itself renews its lease by passing its token: it gets ``claimed`` again);
- ``terminal``: the job already ended (redelivered after it finished): drop it;
- ``parked``: the circuit breaker is open (and this is not the half-open probe): the job moves
  to ``P parked`` and the message is acknowledged; the sweeper re-publishes parked jobs once the
  breaker closes, so an open breaker costs no broker traffic;
- ``paused`` / ``cancelled``: the job's campaign is paused (the job moves to
  ``P campaign:<id>:parked`` until ``campaign resume``) or cancelled (the job ends ``cancelled``);
- ``throttled``: the campaign's global rate limit (``P campaign:<id>:rate:<second>``, shared by
  every worker on every host) is used up for this second: wait and claim again.

- ``mismatch``: the job's record names other parameters (or another campaign or producer) than this
  message: a second message reusing the job's id is refused, never acted on, and the record is
  left alone (a job id is no secret: inbox and campaign ids are digests anyone can compute).

Every lease is written and compared on the Redis server's clock (``store/lua/server_time.lua``):
a caller passes how long a lease lasts, never what time it is.

``settle`` records an outcome only if the fencing token is still current: a delivery that lost
its lease (paused, partitioned) cannot overwrite what the new holder recorded.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import redis

from unsign_worker.store.keys import NO_CAMPAIGN, Keys
from unsign_worker.store.requests import FinishRequest, SettleRequest
from unsign_worker.store.scripts import load

# same_params: whether two job parameter JSON objects name the same parameters (empty values
# count as absent, as they are neither sent nor signed); job_ended: what every terminal state
# does to the leases, counts and the record's expiry.
CLAIM = load("claim", terminal=True,
             libraries=("same_params", "mirror_view", "server_time"))

SETTLE = load("settle", libraries=("job_ended", "mirror_view", "server_time"))

FINISH_UNCLAIMED = load("finish_unclaimed", terminal=True,
                        libraries=("same_params", "job_ended", "mirror_view"))


class ClaimStatus(StrEnum):
    """The answers of the claim script."""

    CLAIMED = "claimed"
    DUPLICATE = "duplicate"
    BUSY = "busy"
    TERMINAL = "terminal"
    PARKED = "parked"
    PAUSED = "paused"
    CANCELLED = "cancelled"
    THROTTLED = "throttled"
    MISMATCH = "mismatch"


@dataclass(frozen=True)
class Claim:
    """The answer of :meth:`DedupStore.claim`."""

    status: ClaimStatus
    token: str = ""
    reached: bool = False
    attempts: int = 0
    first_failure_at: float | None = None
    probe: bool = False
    #: times the job was handed back to the broker so far (its retry count, from its record)
    retries: int = 0
    #: duplicate: the original job; terminal: its state; parked: the breaker's code;
    #: throttled: milliseconds until the rate window reopens
    detail: str = ""


class DedupStore:
    """Atomic claim / settle of agreements and jobs in Redis."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._r = client
        self._keys = keys
        self._claim = CLAIM.register(client)
        self._settle = SETTLE.register(client)
        self._finish = FINISH_UNCLAIMED.register(client)

    def claim(self, *, job_id: str, identity: str, identity_masked: str, params_json: str,
              campaign: str, reference: str, lease_seconds: float,
              probe_after_seconds: float, pipe: Any = None, renew_token: str = "",
              producer: str = "") -> Claim | None:
        """Claim the agreement for one delivery of a job (or, with ``renew_token``, extend the
        lease this delivery holds). With ``pipe`` the call is only queued on that pipeline
        (returns None; read its reply with :func:`parse_claim`). The lease runs
        ``lease_seconds`` from the Redis server's clock: the caller's clock plays no part."""
        k, c = self._keys, campaign or NO_CAMPAIGN
        reply = self._claim(
            keys={"job": k.job(job_id), "agreement": k.agreement(identity), "leases": k.leases,
                  "breaker": k.breaker, "breaker_probe": k.breaker_probe, "parked": k.parked,
                  "campaign": k.campaign(c), "campaign_parked": k.campaign_parked(c),
                  "campaign_rates": k.campaign_rates(c),
                  "view": k.producer_job(producer, job_id)},
            args={"job_id": job_id, "lease_seconds": repr(lease_seconds),
                  "identity": identity, "identity_masked": identity_masked,
                  "params_json": params_json, "campaign": campaign, "reference": reference,
                  "probe_after": repr(probe_after_seconds),
                  "probe_ttl_ms": int(lease_seconds * 1000), "renew_token": renew_token,
                  "producer": producer},
            client=pipe,
        )
        return None if pipe is not None else parse_claim(reply)

    def settle(self, request: SettleRequest, *, minute: int, pipe: Any = None) -> str | None:
        """Record an outcome if the fencing token is current: ``ok`` or ``stale``."""
        reply = self._settle(keys=request.script_keys(self._keys, minute),
                             args=request.script_args(), client=pipe)
        return None if pipe is not None else text(reply)

    def finish_unclaimed(self, request: FinishRequest, *, minute: int, pipe: Any = None
                         ) -> str | None:
        """End a job that holds no claim: ``ok``, ``terminal`` if it had already ended, or
        ``mismatch`` if its record names other parameters than the request."""
        reply = self._finish(keys=request.script_keys(self._keys, minute),
                             args=request.script_args(), client=pipe)
        return None if pipe is not None else text(reply)


def text(reply: Any) -> str:
    return reply.decode() if isinstance(reply, bytes) else str(reply)


def parse_claim(reply: Any) -> Claim:
    """The :class:`Claim` for a reply of the claim script."""
    res = [text(x) for x in reply]
    status = res[0]
    if status != ClaimStatus.CLAIMED:
        return Claim(status=ClaimStatus(status), detail=res[1] if len(res) > 1 else "")
    return Claim(status=ClaimStatus.CLAIMED, token=res[1], reached=res[2] == "1",
                 attempts=int(res[3] or 0),
                 first_failure_at=float(res[4]) if res[4] else None, probe=res[5] == "1",
                 retries=int(res[6] or 0) if len(res) > 6 else 0)
