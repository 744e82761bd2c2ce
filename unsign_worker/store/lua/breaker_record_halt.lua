-- KEYS: breaker, halts, probe ; ARGV: now, window, threshold, code, reason, member, probe
local now, window, threshold = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZADD', KEYS[2], now, ARGV[6])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - window)
redis.call('EXPIRE', KEYS[2], math.ceil(window) + 60)
local count = redis.call('ZCARD', KEYS[2])
redis.call('HINCRBY', KEYS[1], 'halts', 1)
if ARGV[7] == '1' then redis.call('DEL', KEYS[3]) end
local state = redis.call('HGET', KEYS[1], 'state')
if count >= threshold or ARGV[7] == '1' then
  if state ~= 'open' or ARGV[7] == '1' then
    redis.call('HSET', KEYS[1], 'state', 'open', 'opened_at', ARGV[1], 'code', ARGV[4],
               'reason', ARGV[5])
    return 'opened'
  end
  return 'open'
end
return state or 'closed'
