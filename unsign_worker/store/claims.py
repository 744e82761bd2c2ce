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

- ``mismatch``: the job's record names other parameters (or another campaign) than this
  message: a second message reusing the job's id is refused, never acted on, and the record is
  left alone (a job id is no secret: inbox and campaign ids are digests anyone can compute).

``settle`` records an outcome only if the fencing token is still current: a delivery that lost
its lease (paused, partitioned) cannot overwrite what the new holder recorded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import redis

from unsign_worker.store.keys import Keys

#: Lua: whether two job parameter JSON objects name the same parameters (empty values count as
#: absent, as they are neither sent nor signed).
SAME_PARAMS_LUA = r"""
local function same_params(a, b)
  if a == b then return true end
  local ok1, x = pcall(cjson.decode, a or '{}')
  local ok2, y = pcall(cjson.decode, b or '{}')
  if not ok1 or not ok2 or type(x) ~= 'table' or type(y) ~= 'table' then return false end
  for k, v in pairs(x) do if v ~= '' and y[k] ~= v then return false end end
  for k, v in pairs(y) do if v ~= '' and x[k] ~= v then return false end end
  return true
end
"""

CLAIM_LUA = SAME_PARAMS_LUA + r"""
-- KEYS: job, agreement, leases, breaker, breaker_probe, parked, campaign, campaign_parked,
--       campaign_rate
-- ARGV: job_id, now, lease_until, identity, identity_masked, params_json, campaign, reference,
--       probe_after, probe_ttl_ms, renew_token ('' for a new claim)
local job, agr, leases, breaker, probe_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local job_id, now, lease_until = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
if redis.call('EXISTS', job) == 0 then
  redis.call('HSET', job, 'job_id', job_id, 'state', 'queued', 'identity', ARGV[4],
             'identity_masked', ARGV[5], 'params', ARGV[6], 'campaign', ARGV[7],
             'reference', ARGV[8], 'created_at', ARGV[2], 'attempts', 0)
end
local st = redis.call('HGET', job, 'state')
if st == 'unsigned' or st == 'already_unsigned' or st == 'duplicate' or st == 'rejected'
   or st == 'dead_lettered' or st == 'cancelled' then
  return {'terminal', st}
end
local rec = redis.call('HMGET', job, 'params', 'campaign')
if not same_params(rec[1], ARGV[6]) or (rec[2] or '') ~= ARGV[7] then
  return {'mismatch', ''}
end
if ARGV[7] ~= '' then
  local c = redis.call('HMGET', KEYS[7], 'state', 'rate')
  if c[1] == 'cancelled' then return {'cancelled', ''} end
  if c[1] == 'paused' then
    redis.call('HSET', job, 'state', 'parked', 'reason', 'campaign paused', 'updated_at', ARGV[2])
    redis.call('ZADD', KEYS[8], ARGV[2], job_id)
    redis.call('ZREM', leases, job_id)
    return {'paused', ''}
  end
  local rate = tonumber(c[2] or '0')
  if rate and rate > 0 then
    local used = redis.call('INCR', KEYS[9])
    if used == 1 then redis.call('PEXPIRE', KEYS[9], 2000) end
    if used > rate then
      local ms = 1000 - math.floor((now * 1000) % 1000)
      return {'throttled', tostring(ms)}
    end
  end
end
local probe = '0'
if redis.call('HGET', breaker, 'state') == 'open' then
  local opened = tonumber(redis.call('HGET', breaker, 'opened_at') or '0')
  if now - opened >= tonumber(ARGV[9])
     and redis.call('SET', probe_key, job_id, 'NX', 'PX', ARGV[10]) then
    probe = '1'
  else
    redis.call('HSET', job, 'state', 'parked', 'reason', 'circuit breaker open',
               'updated_at', ARGV[2])
    redis.call('ZADD', KEYS[6], ARGV[2], job_id)
    redis.call('ZREM', leases, job_id)
    return {'parked', redis.call('HGET', breaker, 'code') or ''}
  end
end
local a = redis.call('HMGET', agr, 'holder', 'state', 'lease_until')
local holder, astate, alease = a[1], a[2], tonumber(a[3] or '0')
if astate == 'unsigned' then
  if holder == job_id then return {'terminal', 'unsigned'} end
  return {'duplicate', holder}
end
if holder and holder ~= '' and holder ~= job_id and (astate == 'in_flight' or astate == 'held')
   and alease > now then
  return {'duplicate', holder}
end
if holder == job_id and st == 'in_flight' and astate == 'in_flight' and alease > now then
  if ARGV[11] ~= '' and redis.call('HGET', agr, 'token') == ARGV[11] then
    -- renewal by the delivery that holds the claim: extend its lease, keep its token
    redis.call('HSET', agr, 'lease_until', ARGV[3])
    redis.call('ZADD', leases, ARGV[3], job_id)
    local held = redis.call('HMGET', job, 'reached', 'attempts', 'first_failure_at', 'retries')
    return {'claimed', ARGV[11], held[1] or '0', held[2] or '0', held[3] or '', '0',
            held[4] or '0'}
  end
  return {'busy', ''}
end
local token = redis.call('HINCRBY', agr, 'token', 1)
redis.call('HSET', agr, 'holder', job_id, 'state', 'in_flight', 'lease_until', ARGV[3])
local info = redis.call('HMGET', job, 'open_attempt', 'reached', 'attempts', 'first_failure_at',
                        'retries')
local reached = info[2] or '0'
if info[1] == '1' then reached = '1' end
redis.call('HSET', job, 'state', 'in_flight', 'open_attempt', 1, 'reached', reached,
           'updated_at', ARGV[2])
redis.call('ZADD', leases, ARGV[3], job_id)
return {'claimed', tostring(token), reached, info[3] or '0', info[4] or '', probe,
        info[5] or '0'}
"""

SETTLE_LUA = r"""
-- KEYS: job, agreement, leases, audit, events, counts, campaign_counts, rate, hook, hooks,
--       dlq, dlq_entry, breaker, breaker_probe, parked
-- ARGV[1]: JSON {job_id, token, now, state, code, reason, attempts, reached, lease_until,
--          first_failure_at, retries, terminal, success, audit, event, hook, dlq, close_breaker,
--          retention, audit_maxlen, events_maxlen, hook_identity, hook_due}
local a = cjson.decode(ARGV[1])
local job, agr = KEYS[1], KEYS[2]
local tok = redis.call('HGET', agr, 'token')
if tok ~= a.token then
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', a.audit_maxlen, '*', 'data', cjson.encode(a.audit))
  return 'stale'
end
redis.call('HSET', job, 'state', a.state, 'code', a.code, 'reason', a.reason,
           'attempts', a.attempts, 'reached', a.reached, 'updated_at', a.now, 'open_attempt', 0,
           'retries', a.retries)
if a.first_failure_at ~= '' then
  redis.call('HSETNX', job, 'first_failure_at', a.first_failure_at)
end
if a.terminal then
  redis.call('HSET', job, 'finished_at', a.now)
  redis.call('ZREM', KEYS[3], a.job_id)
  redis.call('HINCRBY', KEYS[6], a.state, 1)
  redis.call('HINCRBY', KEYS[8], a.state, 1)
  redis.call('EXPIRE', KEYS[8], 3600)
  if a.campaign ~= '' then redis.call('HINCRBY', KEYS[7], a.state, 1) end
  if a.retention > 0 then redis.call('EXPIRE', job, a.retention) end
  if a.success then
    redis.call('HSET', agr, 'state', 'unsigned', 'holder', a.job_id, 'lease_until', 0,
               'unsigned_at', a.now)
  else
    redis.call('HSET', agr, 'state', 'released', 'holder', '', 'lease_until', 0)
  end
elseif a.state == 'parked' then
  redis.call('HSET', agr, 'state', 'released', 'holder', '', 'lease_until', 0)
  redis.call('ZREM', KEYS[3], a.job_id)
  redis.call('ZADD', KEYS[15], a.now, a.job_id)
else
  redis.call('HSET', agr, 'state', 'held', 'lease_until', a.lease_until)
  redis.call('ZADD', KEYS[3], a.lease_until, a.job_id)
end
if a.event then
  redis.call('XADD', KEYS[5], 'MAXLEN', '~', a.events_maxlen, '*', 'data', cjson.encode(a.event))
end
if a.hook then
  if redis.call('EXISTS', KEYS[9]) == 0 then
    redis.call('HSET', KEYS[9], 'state', 'pending', 'job_id', a.job_id, 'attempts', 0,
               'idempotency_key', a.hook.idempotency_key, 'event', cjson.encode(a.hook),
               'created_at', a.now)
    redis.call('ZADD', KEYS[10], a.hook_due, a.hook_identity)
  end
end
if a.dlq then
  local flat = {}
  for k, v in pairs(a.dlq) do
    table.insert(flat, k)
    if type(v) == 'table' then
      table.insert(flat, cjson.encode(v))
    else
      table.insert(flat, tostring(v))
    end
  end
  redis.call('DEL', KEYS[12])
  redis.call('HSET', KEYS[12], unpack(flat))
  redis.call('ZADD', KEYS[11], a.now, a.job_id)
  -- a dead-lettered job is kept until requeue or resolve, which need its parameters
  redis.call('PERSIST', job)
end
if a.close_breaker then
  redis.call('HSET', KEYS[13], 'state', 'closed', 'closed_at', a.now)
  redis.call('DEL', KEYS[14])
end
redis.call('XADD', KEYS[4], 'MAXLEN', '~', a.audit_maxlen, '*', 'data', cjson.encode(a.audit))
return 'ok'
"""

FINISH_UNCLAIMED_LUA = SAME_PARAMS_LUA + r"""
-- A job that ends without holding the agreement (rejected before claiming, or duplicate).
-- KEYS: job, audit, counts, campaign_counts, rate, leases
-- ARGV[1]: JSON {job_id, now, state, code, reason, original, identity, identity_masked, params,
--          campaign, reference, retention, audit, audit_maxlen}
local a = cjson.decode(ARGV[1])
local job = KEYS[1]
local st = redis.call('HGET', job, 'state')
if st == 'unsigned' or st == 'already_unsigned' or st == 'duplicate' or st == 'rejected'
   or st == 'dead_lettered' or st == 'cancelled' then
  return 'terminal'
end
if st and not same_params(redis.call('HGET', job, 'params'), a.params) then
  return 'mismatch'
end
if not st then
  redis.call('HSET', job, 'job_id', a.job_id, 'identity', a.identity,
             'identity_masked', a.identity_masked, 'params', a.params, 'campaign', a.campaign,
             'reference', a.reference, 'created_at', a.now, 'attempts', 0)
end
redis.call('HSET', job, 'state', a.state, 'code', a.code, 'reason', a.reason,
           'original', a.original, 'finished_at', a.now, 'updated_at', a.now)
redis.call('ZREM', KEYS[6], a.job_id)
redis.call('HINCRBY', KEYS[3], a.state, 1)
redis.call('HINCRBY', KEYS[5], a.state, 1)
redis.call('EXPIRE', KEYS[5], 3600)
if a.campaign ~= '' then redis.call('HINCRBY', KEYS[4], a.state, 1) end
if a.retention > 0 then redis.call('EXPIRE', job, a.retention) end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', a.audit_maxlen, '*', 'data', cjson.encode(a.audit))
return 'ok'
"""


#: Stands for "no campaign" in key names, so every key a script declares is a real key under
#: the prefix (an ACL user limited to ``~<prefix>*`` may not name an empty key); the scripts
#: test the campaign argument, and never touch these keys without a campaign.
NO_CAMPAIGN = "-"


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
        self._claim = client.register_script(CLAIM_LUA)
        self._settle = client.register_script(SETTLE_LUA)
        self._finish = client.register_script(FINISH_UNCLAIMED_LUA)

    def claim(self, *, job_id: str, identity: str, identity_masked: str, params_json: str,
              campaign: str, reference: str, now: float, lease_seconds: float,
              probe_after_seconds: float, pipe: Any = None, renew_token: str = ""
              ) -> Claim | None:
        """Claim the agreement for one delivery of a job (or, with ``renew_token``, extend the
        lease this delivery holds). With ``pipe`` the call is only queued on that pipeline
        (returns None; read its reply with :func:`parse_claim`)."""
        k = self._keys
        reply = self._claim(
            keys=[k.job(job_id), k.agreement(identity), k.leases, k.breaker, k.breaker_probe,
                  k.parked, k.campaign(campaign or NO_CAMPAIGN),
                  k.campaign_parked(campaign or NO_CAMPAIGN),
                  k.campaign_rate(campaign or NO_CAMPAIGN, int(now))],
            args=[job_id, repr(now), repr(now + lease_seconds), identity, identity_masked,
                  params_json, campaign, reference, repr(probe_after_seconds),
                  int(lease_seconds * 1000), renew_token],
            client=pipe,
        )
        return None if pipe is not None else parse_claim(reply)

    def settle(self, *, job_id: str, identity: str, campaign: str, payload: dict[str, Any],
               minute: int, pipe: Any = None) -> str | None:
        """Record an outcome if the fencing token is current: ``ok`` or ``stale``."""
        k = self._keys
        keys = [k.job(job_id), k.agreement(identity), k.leases, k.audit, k.events, k.counts,
                k.campaign_counts(campaign or NO_CAMPAIGN), k.rate(minute),
                k.hook(identity), k.hooks, k.dlq, k.dlq_entry(job_id), k.breaker,
                k.breaker_probe, k.parked]
        reply = self._settle(keys=keys, args=[json.dumps({**payload, "campaign": campaign})],
                             client=pipe)
        return None if pipe is not None else text(reply)

    def finish_unclaimed(self, *, job_id: str, campaign: str, payload: dict[str, Any],
                         minute: int, pipe: Any = None) -> str | None:
        """End a job that holds no claim: ``ok``, ``terminal`` if it had already ended, or
        ``mismatch`` if its record names other parameters than ``payload``."""
        k = self._keys
        keys = [k.job(job_id), k.audit, k.counts,
                k.campaign_counts(campaign or NO_CAMPAIGN), k.rate(minute), k.leases]
        reply = self._finish(keys=keys, args=[json.dumps({**payload, "campaign": campaign})],
                             client=pipe)
        return None if pipe is not None else text(reply)


def text(reply: Any) -> str:
    return reply.decode() if isinstance(reply, bytes) else str(reply)


def parse_claim(reply: Any) -> Claim:
    """The :class:`Claim` for a reply of the claim script."""
    res = [text(x) for x in reply]
    status = res[0]
    if status != "claimed":
        return Claim(status=ClaimStatus(status), detail=res[1] if len(res) > 1 else "")
    return Claim(status=ClaimStatus.CLAIMED, token=res[1], reached=res[2] == "1",
                 attempts=int(res[3] or 0),
                 first_failure_at=float(res[4]) if res[4] else None, probe=res[5] == "1",
                 retries=int(res[6] or 0) if len(res) > 6 else 0)
