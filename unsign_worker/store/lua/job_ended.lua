-- Shared by settle and finish_unclaimed: a job reached terminal state a.state. It leaves the
-- leases, is counted (overall, per minute for 25 hours: RATE_RETENTION_SECONDS in keys.py, per
-- campaign, and in the campaign's progress per 10 seconds, '<start of the 10 s>:<state>':
-- PROGRESS_STEP_SECONDS), and its record expires a.retention seconds from now.
local function job_ended(a, job, leases, counts, campaign_counts, rate, campaign_progress)
  redis.call('ZREM', leases, a.job_id)
  redis.call('HINCRBY', counts, a.state, 1)
  redis.call('HINCRBY', rate, a.state, 1)
  redis.call('EXPIRE', rate, 90000)
  if a.campaign ~= '' then
    redis.call('HINCRBY', campaign_counts, a.state, 1)
    redis.call('HINCRBY', campaign_progress,
               string.format('%d:%s', math.floor(tonumber(a.now) / 10) * 10, a.state), 1)
  end
  if a.retention > 0 then redis.call('EXPIRE', job, a.retention) end
end
