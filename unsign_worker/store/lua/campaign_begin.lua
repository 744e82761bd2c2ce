-- KEYS: meta, campaigns ; ARGV: id, name, source, total, rejected, rate ('' = keep), now
local st = redis.call('HGET', KEYS[1], 'state')
if st == 'cancelled' then return 'cancelled' end
if not st then
  redis.call('HSET', KEYS[1], 'id', ARGV[1], 'state', 'running', 'created_at', ARGV[7],
             'enqueued', 0, 'rate', 0, 'name', ARGV[2])
  redis.call('ZADD', KEYS[2], ARGV[7], ARGV[1])
  st = 'new'
elseif st == 'done' then
  redis.call('HSET', KEYS[1], 'state', 'running')
end
if ARGV[2] ~= '' then redis.call('HSET', KEYS[1], 'name', ARGV[2]) end
if ARGV[6] ~= '' then redis.call('HSET', KEYS[1], 'rate', ARGV[6]) end
redis.call('HSET', KEYS[1], 'source', ARGV[3], 'total', ARGV[4], 'rejected', ARGV[5],
           'updated_at', ARGV[7], 'enqueue_complete', 0)
redis.call('HDEL', KEYS[1], 'finished_at')
return st
