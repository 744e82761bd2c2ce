-- KEYS: dlq, dlq_entry, job, counts, leases, audit, campaign_counts, campaign, view, rate,
--       campaign_progress
-- ARGV: job_id, now, lease_seconds, by, audit_maxlen, campaign, producer, minute
-- rate is the per-minute counts of the minute the job was dead-lettered (minute: that minute,
-- '' when the record has no finished_at): its dead letter is taken back there as from all time,
-- so that the last hour never counts more than all time; and from its campaign's progress (the
-- 10 seconds of its finished_at), so that the progress over time adds up to its counts. The
-- job's lease is on the server's clock (server_time); A.now only stamps the record.
if not redis.call('ZSCORE', K.dlq, A.job_id) then return 'absent' end
local st = redis.call('HGET', K.job, 'state')
if not st then return 'no_record' end
if st ~= 'dead_lettered' then return 'state:' .. st end
local code = redis.call('HGET', K.dlq_entry, 'code') or ''
local finished = tonumber(redis.call('HGET', K.job, 'finished_at') or '')
if finished and A.minute ~= '' and math.floor(finished / 60) == tonumber(A.minute)
    and tonumber(redis.call('HGET', K.rate, 'dead_lettered') or '0') > 0 then
  redis.call('HINCRBY', K.rate, 'dead_lettered', -1)
end
redis.call('HSET', K.job, 'state', 'queued', 'updated_at', A.now, 'requeued_at', A.now,
           'requeued_by', A.by, 'last_dead_letter_code', code, 'code', '',
           'reason', 'requeued from the dead-letter queue', 'open_attempt', 0)
redis.call('HINCRBY', K.job, 'requeues', 1)
redis.call('HDEL', K.job, 'first_failure_at', 'retries', 'finished_at', 'sent_at')
redis.call('PERSIST', K.job)
redis.call('HINCRBY', K.counts, 'dead_lettered', -1)
if A.campaign ~= '' then
  redis.call('HINCRBY', K.campaign_counts, 'dead_lettered', -1)
  if finished then
    local field = string.format('%d:dead_lettered', math.floor(finished / 10) * 10)
    if tonumber(redis.call('HGET', K.campaign_progress, field) or '0') > 0 then
      redis.call('HINCRBY', K.campaign_progress, field, -1)
    end
  end
  if redis.call('HEXISTS', K.campaign, 'run_finished_at') == 1 then
    redis.call('HINCRBY', K.campaign, 'requeued_after_run', 1)
  end
  if redis.call('HGET', K.campaign, 'state') == 'done' then
    redis.call('HSET', K.campaign, 'state', 'running')
    redis.call('HDEL', K.campaign, 'finished_at')
  end
end
redis.call('ZREM', K.dlq, A.job_id)
redis.call('DEL', K.dlq_entry)
redis.call('ZADD', K.leases, server_time() + tonumber(A.lease_seconds), A.job_id)
redis.call('XADD', K.audit, 'MAXLEN', '~', A.audit_maxlen, '*', 'data', cjson.encode({
  time = tonumber(A.now), job_id = A.job_id, outcome = 'requeued', code = code,
  by = A.by}))
mirror_view(K.job, K.view, A.producer)
return 'ok'
