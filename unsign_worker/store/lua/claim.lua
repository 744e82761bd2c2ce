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
if TERMINAL[st] then
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
