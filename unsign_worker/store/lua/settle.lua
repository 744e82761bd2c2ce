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
  job_ended(a, job, KEYS[3], KEYS[6], KEYS[7], KEYS[8])
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
