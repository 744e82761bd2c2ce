-- KEYS: leases, jobs...
-- ARGV: records, ids, check_at
-- records: JSON list of flat field lists, one per job; ids: JSON list of their job ids;
-- check_at: JSON list of when each queued job is checked (its score in the leases).
-- Creates the records of the jobs that have none: a record is never overwritten, whoever
-- names its job id. Returns the positions (1-based) of the jobs whose record existed.
local records = cjson.decode(A.records)
local ids = cjson.decode(A.ids)
local check_at = cjson.decode(A.check_at)
local existing = {}
for i, job in ipairs(K.jobs) do
  if redis.call('EXISTS', job) == 1 then
    existing[#existing + 1] = i
  else
    redis.call('HSET', job, unpack(records[i]))
    redis.call('ZADD', K.leases, 'NX', check_at[i], ids[i])
  end
end
return existing
