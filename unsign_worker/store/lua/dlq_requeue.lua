-- KEYS: dlq, dlq_entry, job, counts, leases, audit, campaign_counts, campaign
-- ARGV: job_id, now, lease_until, by, audit_maxlen, campaign
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 'absent' end
local st = redis.call('HGET', KEYS[3], 'state')
if not st then return 'no_record' end
if st ~= 'dead_lettered' then return 'state:' .. st end
local code = redis.call('HGET', KEYS[2], 'code') or ''
redis.call('HSET', KEYS[3], 'state', 'queued', 'updated_at', ARGV[2], 'requeued_at', ARGV[2],
           'requeued_by', ARGV[4], 'last_dead_letter_code', code, 'code', '',
           'reason', 'requeued from the dead-letter queue', 'open_attempt', 0)
redis.call('HINCRBY', KEYS[3], 'requeues', 1)
redis.call('HDEL', KEYS[3], 'first_failure_at', 'retries', 'finished_at', 'sent_at')
redis.call('PERSIST', KEYS[3])
redis.call('HINCRBY', KEYS[4], 'dead_lettered', -1)
if ARGV[6] ~= '' then
  redis.call('HINCRBY', KEYS[7], 'dead_lettered', -1)
  if redis.call('HGET', KEYS[8], 'state') == 'done' then
    redis.call('HSET', KEYS[8], 'state', 'running')
    redis.call('HDEL', KEYS[8], 'finished_at')
  end
end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2])
redis.call('ZADD', KEYS[5], ARGV[3], ARGV[1])
redis.call('XADD', KEYS[6], 'MAXLEN', '~', ARGV[5], '*', 'data', cjson.encode({
  time = tonumber(ARGV[2]), job_id = ARGV[1], outcome = 'requeued', code = code,
  by = ARGV[4]}))
return 'ok'
