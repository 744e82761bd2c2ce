-- KEYS: breaker, halts, probe
-- ARGV: window, threshold, code, reason, member, was_probe
-- The halts' window and opened_at are on the server's clock (server_time), as is the claim's
-- half-open check against opened_at.
local now, window, threshold = server_time(), tonumber(A.window), tonumber(A.threshold)
redis.call('ZADD', K.halts, now, A.member)
redis.call('ZREMRANGEBYSCORE', K.halts, '-inf', now - window)
redis.call('EXPIRE', K.halts, math.ceil(window) + 60)
local count = redis.call('ZCARD', K.halts)
redis.call('HINCRBY', K.breaker, 'halts', 1)
if A.was_probe == '1' then redis.call('DEL', K.probe) end
local state = redis.call('HGET', K.breaker, 'state')
if count >= threshold or A.was_probe == '1' then
  if state ~= 'open' or A.was_probe == '1' then
    redis.call('HSET', K.breaker, 'state', 'open', 'opened_at', now, 'code', A.code,
               'reason', A.reason)
    return 'opened'
  end
  return 'open'
end
return state or 'closed'
