-- KEYS: meta
-- ARGV: to, now, from...
-- moves the campaign to state A.to if it is in one of the states A.from
local st = redis.call('HGET', K.meta, 'state')
if not st then return 'absent' end
for _, from in ipairs(A.from) do
  if st == from then
    redis.call('HSET', K.meta, 'state', A.to, 'updated_at', A.now, A.to .. '_at', A.now)
    return 'ok'
  end
end
return st
