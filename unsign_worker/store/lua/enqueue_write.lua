-- KEYS: meta, leases, jobs...
-- ARGV: records, ids, check_at
-- records: JSON list of flat field lists, one per job; ids: JSON list of their job ids;
-- check_at: when a queued job is checked (its score in the leases).
-- Writes the records that do not exist yet; returns the positions (1-based) of those that did.
local records = cjson.decode(A.records)
local ids = cjson.decode(A.ids)
local existing = {}
for i, job in ipairs(K.jobs) do
  if redis.call('EXISTS', job) == 1 then
    existing[#existing + 1] = i
  else
    redis.call('HSET', job, unpack(records[i]))
    redis.call('ZADD', K.leases, 'NX', A.check_at, ids[i])
  end
end
redis.call('HINCRBY', K.meta, 'enqueued', #K.jobs - #existing)
return existing
