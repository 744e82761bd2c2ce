-- Copies what a producer may read of its job from the job's record to the producer's view
-- (P producer:<name>:job:<id>): state, code, reason, attempts, reference and timestamps, never
-- the parameters; the view gets the record's time to live. Only if the record names that
-- producer: a job of the operator or of a campaign (producer '') has no view.
local function mirror_view(job, view, producer)
  if producer == '' then return end
  local f = redis.call('HMGET', job, 'producer', 'job_id', 'state', 'code', 'reason', 'attempts',
                       'reference', 'created_at', 'updated_at', 'finished_at')
  if f[1] ~= producer then return end
  redis.call('HSET', view, 'job_id', f[2] or '', 'state', f[3] or '', 'code', f[4] or '',
             'reason', f[5] or '', 'attempts', f[6] or '0', 'reference', f[7] or '',
             'created_at', f[8] or '', 'updated_at', f[9] or '', 'finished_at', f[10] or '')
  local ttl = redis.call('PTTL', job)
  if ttl > 0 then redis.call('PEXPIRE', view, ttl) else redis.call('PERSIST', view) end
end
