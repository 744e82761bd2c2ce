-- KEYS: breaker, halts, probe
-- ARGV: now, window, threshold, code, reason, member, was_probe
local now, window, threshold = tonumber(A.now), tonumber(A.window), tonumber(A.threshold)
redis.call('ZADD', K.halts, now, A.member)
redis.call('ZREMRANGEBYSCORE', K.halts, '-inf', now - window)
redis.call('EXPIRE', K.halts, math.ceil(window) + 60)
local count = redis.call('ZCARD', K.halts)
redis.call('HINCRBY', K.breaker, 'halts', 1)
if A.was_probe == '1' then redis.call('DEL', K.probe) end
local state = redis.call('HGET', K.breaker, 'state')
if count >= threshold or A.was_probe == '1' then
  if state ~= 'open' or A.was_probe == '1' then
    redis.call('HSET', K.breaker, 'state', 'open', 'opened_at', A.now, 'code', A.code,
               'reason', A.reason)
    return 'opened'
  end
  return 'open'
end
return state or 'closed'
