-- KEYS: hook, hooks ; ARGV: now, lease_until, identity
local st = redis.call('HGET', KEYS[1], 'state')
if not st then return {'missing', ''} end
if st == 'done' then return {'done', ''} end
local lease = tonumber(redis.call('HGET', KEYS[1], 'lease_until') or '0')
if st == 'running' and lease > tonumber(ARGV[1]) then return {'busy', ''} end
local n = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
redis.call('HSET', KEYS[1], 'state', 'running', 'lease_until', ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
return {'claimed', tostring(n), redis.call('HGET', KEYS[1], 'event')}
