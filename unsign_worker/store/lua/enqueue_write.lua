-- KEYS: campaign meta, leases, job records... ; ARGV[1]: JSON list of flat field lists, one per
-- job; ARGV[2]: JSON list of their job ids; ARGV[3]: when a queued job is checked (leases)
-- Writes the records that do not exist yet; returns the positions (1-based) of those that did.
local records = cjson.decode(ARGV[1])
local ids = cjson.decode(ARGV[2])
local existing = {}
for i = 3, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    existing[#existing + 1] = i - 2
  else
    redis.call('HSET', KEYS[i], unpack(records[i - 2]))
    redis.call('ZADD', KEYS[2], 'NX', ARGV[3], ids[i - 2])
  end
end
redis.call('HINCRBY', KEYS[1], 'enqueued', #KEYS - 2 - #existing)
return existing
