-- KEYS: hook, hooks
-- ARGV: now, lease_until, identity
local st = redis.call('HGET', K.hook, 'state')
if not st then return {'missing', ''} end
if st == 'done' then return {'done', ''} end
local lease = tonumber(redis.call('HGET', K.hook, 'lease_until') or '0')
if st == 'running' and lease > tonumber(A.now) then return {'busy', ''} end
local n = redis.call('HINCRBY', K.hook, 'attempts', 1)
redis.call('HSET', K.hook, 'state', 'running', 'lease_until', A.lease_until)
redis.call('ZADD', K.hooks, A.lease_until, A.identity)
return {'claimed', tostring(n), redis.call('HGET', K.hook, 'event')}
