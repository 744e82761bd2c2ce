-- KEYS: meta ; ARGV: to, now, from states...
local st = redis.call('HGET', KEYS[1], 'state')
if not st then return 'absent' end
for i = 3, #ARGV do
  if st == ARGV[i] then
    redis.call('HSET', KEYS[1], 'state', ARGV[1], 'updated_at', ARGV[2], ARGV[1] .. '_at', ARGV[2])
    return 'ok'
  end
end
return st
