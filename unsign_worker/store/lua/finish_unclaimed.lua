-- A job that ends without holding the agreement (rejected before claiming, or duplicate).
-- KEYS: job, audit, counts, campaign_counts, rate, leases, view, campaign_progress
-- ARGV: request
-- request: JSON {job_id, now, state, code, reason, original, identity, identity_masked, params,
--          campaign, reference, retention, audit, audit_maxlen, producer} (store/requests.py)
local a = cjson.decode(A.request)
local job = K.job
local st = redis.call('HGET', job, 'state')
if TERMINAL[st] then
  return 'terminal'
end
if st and (not same_params(redis.call('HGET', job, 'params'), a.params)
           or (redis.call('HGET', job, 'producer') or '') ~= a.producer) then
  return 'mismatch'
end
if not st then
  redis.call('HSET', job, 'job_id', a.job_id, 'identity', a.identity,
             'identity_masked', a.identity_masked, 'params', a.params, 'campaign', a.campaign,
             'reference', a.reference, 'created_at', a.now, 'attempts', 0,
             'producer', a.producer)
end
redis.call('HSET', job, 'state', a.state, 'code', a.code, 'reason', a.reason,
           'original', a.original, 'finished_at', a.now, 'updated_at', a.now)
job_ended(a, job, K.leases, K.counts, K.campaign_counts, K.rate, K.campaign_progress)
redis.call('XADD', K.audit, 'MAXLEN', '~', a.audit_maxlen, '*', 'data',
           cjson.encode(a.audit))
mirror_view(job, K.view, a.producer)
return 'ok'
