-- KEYS: meta, campaigns
-- ARGV: id, name, source, total, rejected, rate, now
-- rate '' keeps the campaign's rate; name '' keeps its name
local st = redis.call('HGET', K.meta, 'state')
if st == 'cancelled' then return 'cancelled' end
if not st then
  redis.call('HSET', K.meta, 'id', A.id, 'state', 'running', 'created_at', A.now,
             'enqueued', 0, 'rate', 0, 'name', A.name)
  redis.call('ZADD', K.campaigns, A.now, A.id)
  st = 'new'
elseif st == 'done' then
  redis.call('HSET', K.meta, 'state', 'running')
end
if A.name ~= '' then redis.call('HSET', K.meta, 'name', A.name) end
if A.rate ~= '' then redis.call('HSET', K.meta, 'rate', A.rate) end
redis.call('HSET', K.meta, 'source', A.source, 'total', A.total, 'rejected', A.rejected,
           'updated_at', A.now, 'enqueue_complete', 0)
redis.call('HDEL', K.meta, 'finished_at')
return st
