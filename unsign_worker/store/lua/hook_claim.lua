-- KEYS: hook, hooks
-- ARGV: lease_seconds, identity
-- The run's lease is on the server's clock (server_time), as is the check of a running one.
local now = server_time()
local lease_until = now + tonumber(A.lease_seconds)
local st = redis.call('HGET', K.hook, 'state')
if not st then return {'missing', ''} end
if st == 'done' then return {'done', ''} end
local lease = tonumber(redis.call('HGET', K.hook, 'lease_until') or '0')
if st == 'running' and lease > now then return {'busy', ''} end
local n = redis.call('HINCRBY', K.hook, 'attempts', 1)
redis.call('HSET', K.hook, 'state', 'running', 'lease_until', lease_until)
redis.call('ZADD', K.hooks, lease_until, A.identity)
return {'claimed', tostring(n), redis.call('HGET', K.hook, 'event')}
