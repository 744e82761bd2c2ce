-- KEYS: job, agreement, leases, breaker, breaker_probe, parked, campaign, campaign_parked,
--       campaign_rates, view
-- ARGV: job_id, lease_seconds, identity, identity_masked, params_json, campaign, reference,
--       probe_after, probe_ttl_ms, renew_token, producer
-- renew_token: '' for a new claim, else the token of the delivery that renews its lease;
-- campaign_rates: the prefix of the campaign's per-second counters (the second is the server's).
-- Times are the server's (server_time): the caller passes a lease's length, never a time.
local job, agr, leases, breaker, probe_key = K.job, K.agreement, K.leases, K.breaker,
  K.breaker_probe
local job_id, now = A.job_id, server_time()
local lease_until = now + tonumber(A.lease_seconds)
if redis.call('EXISTS', job) == 0 then
  redis.call('HSET', job, 'job_id', job_id, 'state', 'queued', 'identity', A.identity,
             'identity_masked', A.identity_masked, 'params', A.params_json,
             'campaign', A.campaign, 'reference', A.reference, 'created_at', now, 'attempts', 0,
             'producer', A.producer)
end
local st = redis.call('HGET', job, 'state')
if TERMINAL[st] then
  return {'terminal', st}
end
local rec = redis.call('HMGET', job, 'params', 'campaign', 'producer')
if not same_params(rec[1], A.params_json) or (rec[2] or '') ~= A.campaign
   or (rec[3] or '') ~= A.producer then
  return {'mismatch', ''}
end
-- a record its producer wrote names no agreement yet (the partner is the worker's): this one
redis.call('HSETNX', job, 'identity', A.identity)
redis.call('HSETNX', job, 'identity_masked', A.identity_masked)
if A.campaign ~= '' then
  local c = redis.call('HMGET', K.campaign, 'state', 'rate')
  if c[1] == 'cancelled' then return {'cancelled', ''} end
  if c[1] == 'paused' then
    redis.call('HSET', job, 'state', 'parked', 'reason', 'campaign paused', 'updated_at', now)
    redis.call('ZADD', K.campaign_parked, now, job_id)
    redis.call('ZREM', leases, job_id)
    mirror_view(job, K.view, A.producer)
    return {'paused', ''}
  end
  local rate = tonumber(c[2] or '0')
  if rate and rate > 0 then
    local rate_key = K.campaign_rates .. math.floor(now)
    local used = redis.call('INCR', rate_key)
    if used == 1 then redis.call('PEXPIRE', rate_key, 2000) end
    if used > rate then
      local ms = 1000 - math.floor((now * 1000) % 1000)
      return {'throttled', tostring(ms)}
    end
  end
end
local probe = '0'
if redis.call('HGET', breaker, 'state') == 'open' then
  local opened = tonumber(redis.call('HGET', breaker, 'opened_at') or '0')
  if now - opened >= tonumber(A.probe_after)
     and redis.call('SET', probe_key, job_id, 'NX', 'PX', A.probe_ttl_ms) then
    probe = '1'
  else
    redis.call('HSET', job, 'state', 'parked', 'reason', 'circuit breaker open',
               'updated_at', now)
    redis.call('ZADD', K.parked, now, job_id)
    redis.call('ZREM', leases, job_id)
    mirror_view(job, K.view, A.producer)
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
  if A.renew_token ~= '' and redis.call('HGET', agr, 'token') == A.renew_token then
    -- renewal by the delivery that holds the claim: extend its lease, keep its token
    redis.call('HSET', agr, 'lease_until', lease_until)
    redis.call('ZADD', leases, lease_until, job_id)
    local held = redis.call('HMGET', job, 'reached', 'attempts', 'first_failure_at', 'retries')
    return {'claimed', A.renew_token, held[1] or '0', held[2] or '0', held[3] or '', '0',
            held[4] or '0'}
  end
  return {'busy', ''}
end
local token = redis.call('HINCRBY', agr, 'token', 1)
redis.call('HSET', agr, 'holder', job_id, 'state', 'in_flight', 'lease_until', lease_until)
local info = redis.call('HMGET', job, 'open_attempt', 'reached', 'attempts', 'first_failure_at',
                        'retries')
local reached = info[2] or '0'
if info[1] == '1' then reached = '1' end
redis.call('HSET', job, 'state', 'in_flight', 'open_attempt', 1, 'reached', reached,
           'updated_at', now)
redis.call('ZADD', leases, lease_until, job_id)
if st ~= 'in_flight' then mirror_view(job, K.view, A.producer) end
return {'claimed', tostring(token), reached, info[3] or '0', info[4] or '', probe,
        info[5] or '0'}
