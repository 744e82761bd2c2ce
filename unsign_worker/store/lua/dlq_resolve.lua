-- KEYS: dlq, dlq_entry, resolved, job, audit
-- ARGV: job_id, now, by, note, entry_ttl, job_ttl, audit_maxlen
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 'absent' end
redis.call('HSET', KEYS[2], 'resolved_at', ARGV[2], 'resolved_by', ARGV[3],
           'resolution_note', ARGV[4])
redis.call('EXPIRE', KEYS[2], ARGV[5])
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
if redis.call('EXISTS', KEYS[4]) == 1 then
  redis.call('HSET', KEYS[4], 'resolved_at', ARGV[2], 'resolved_by', ARGV[3],
             'resolution_note', ARGV[4])
  redis.call('EXPIRE', KEYS[4], ARGV[6])
end
redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[7], '*', 'data', cjson.encode({
  time = tonumber(ARGV[2]), job_id = ARGV[1], outcome = 'resolved', by = ARGV[3],
  reason = ARGV[4]}))
return 'ok'
