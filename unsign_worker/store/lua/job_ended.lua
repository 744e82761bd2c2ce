-- Shared by settle and finish_unclaimed: a job reached terminal state a.state. It leaves the
-- leases, is counted (overall, per minute for an hour, per campaign), and its record expires
-- a.retention seconds from now.
local function job_ended(a, job, leases, counts, campaign_counts, rate)
  redis.call('ZREM', leases, a.job_id)
  redis.call('HINCRBY', counts, a.state, 1)
  redis.call('HINCRBY', rate, a.state, 1)
  redis.call('EXPIRE', rate, 3600)
  if a.campaign ~= '' then redis.call('HINCRBY', campaign_counts, a.state, 1) end
  if a.retention > 0 then redis.call('EXPIRE', job, a.retention) end
end
