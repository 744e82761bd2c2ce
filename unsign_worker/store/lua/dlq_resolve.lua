-- KEYS: dlq, dlq_entry, resolved, job, audit, view
-- ARGV: job_id, now, by, note, entry_ttl, job_ttl, audit_maxlen, producer
if not redis.call('ZSCORE', K.dlq, A.job_id) then return 'absent' end
redis.call('HSET', K.dlq_entry, 'resolved_at', A.now, 'resolved_by', A.by,
           'resolution_note', A.note)
redis.call('EXPIRE', K.dlq_entry, A.entry_ttl)
redis.call('ZREM', K.dlq, A.job_id)
redis.call('ZADD', K.resolved, A.now, A.job_id)
if redis.call('EXISTS', K.job) == 1 then
  redis.call('HSET', K.job, 'resolved_at', A.now, 'resolved_by', A.by,
             'resolution_note', A.note)
  redis.call('EXPIRE', K.job, A.job_ttl)
end
redis.call('XADD', K.audit, 'MAXLEN', '~', A.audit_maxlen, '*', 'data', cjson.encode({
  time = tonumber(A.now), job_id = A.job_id, outcome = 'resolved', by = A.by,
  reason = A.note}))
mirror_view(K.job, K.view, A.producer)
return 'ok'
