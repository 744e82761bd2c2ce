-- Creates the records of the jobs that have none (a record is never overwritten, whoever names
-- its job id), each new one in the leases at its score and, for a producer's job, copied to its
-- producer's view (mirror_view); returns the positions (1-based) of the jobs whose record
-- existed. records: flat field lists, one per job; scores: one per job; views and producers
-- (nil for a campaign's jobs, which have no producer): one per job.
local function create_absent(jobs, records, ids, scores, leases, views, producers)
  local existing = {}
  for i, job in ipairs(jobs) do
    if redis.call('EXISTS', job) == 1 then
      existing[#existing + 1] = i
    else
      redis.call('HSET', job, unpack(records[i]))
      redis.call('ZADD', leases, 'NX', scores[i], ids[i])
      if views then mirror_view(job, views[i], producers[i]) end
    end
  end
  return existing
end
