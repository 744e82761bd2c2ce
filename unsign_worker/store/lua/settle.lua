-- KEYS: job, agreement, leases, audit, events, counts, campaign_counts, rate, hook, hooks,
--       dlq, dlq_entry, breaker, breaker_probe, parked, view, campaign_progress
-- ARGV: request
-- request: JSON {job_id, token, now, state, code, reason, attempts, reached, lease_seconds,
--          first_failure_at, retries, terminal, success, audit, event, hook, dlq, close_breaker,
--          retention, audit_maxlen, events_maxlen, hook_identity, hook_delay, producer}
--          (store/requests.py)
-- a.now (the worker's clock) only stamps the record and counts; the lease of a job handed back
-- (lease_seconds from now), the hook's due time (hook_delay from now) and the parked time are
-- on the server's clock (server_time).
local a = cjson.decode(A.request)
local job, agr = K.job, K.agreement
local tok = redis.call('HGET', agr, 'token')
if tok ~= a.token then
  redis.call('XADD', K.audit, 'MAXLEN', '~', a.audit_maxlen, '*', 'data',
             cjson.encode(a.audit))
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
  job_ended(a, job, K.leases, K.counts, K.campaign_counts, K.rate, K.campaign_progress)
  if a.success then
    redis.call('HSET', agr, 'state', 'unsigned', 'holder', a.job_id, 'lease_until', 0,
               'unsigned_at', a.now)
  else
    redis.call('HSET', agr, 'state', 'released', 'holder', '', 'lease_until', 0)
  end
elseif a.state == 'parked' then
  redis.call('HSET', agr, 'state', 'released', 'holder', '', 'lease_until', 0)
  redis.call('ZREM', K.leases, a.job_id)
  redis.call('ZADD', K.parked, server_time(), a.job_id)
else
  local lease_until = server_time() + a.lease_seconds
  redis.call('HSET', agr, 'state', 'held', 'lease_until', lease_until)
  redis.call('ZADD', K.leases, lease_until, a.job_id)
end
if a.event then
  redis.call('XADD', K.events, 'MAXLEN', '~', a.events_maxlen, '*', 'data',
             cjson.encode(a.event))
end
if a.hook then
  if redis.call('EXISTS', K.hook) == 0 then
    redis.call('HSET', K.hook, 'state', 'pending', 'job_id', a.job_id, 'attempts', 0,
               'idempotency_key', a.hook.idempotency_key, 'event', cjson.encode(a.hook),
               'created_at', a.now)
    redis.call('ZADD', K.hooks, server_time() + a.hook_delay, a.hook_identity)
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
  redis.call('DEL', K.dlq_entry)
  redis.call('HSET', K.dlq_entry, unpack(flat))
  redis.call('ZADD', K.dlq, a.now, a.job_id)
  -- a dead-lettered job is kept until requeue or resolve, which need its parameters
  redis.call('PERSIST', job)
end
if a.close_breaker then
  redis.call('HSET', K.breaker, 'state', 'closed', 'closed_at', a.now)
  redis.call('DEL', K.breaker_probe)
end
redis.call('XADD', K.audit, 'MAXLEN', '~', a.audit_maxlen, '*', 'data',
           cjson.encode(a.audit))
mirror_view(job, K.view, a.producer)
return 'ok'
