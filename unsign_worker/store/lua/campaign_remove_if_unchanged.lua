-- KEYS: zset
-- ARGV: scored...
-- scored: member, score, member, score... : remove the members still at that score
local removed = 0
for i = 1, #A.scored, 2 do
  local score = redis.call('ZSCORE', K.zset, A.scored[i])
  if score and tonumber(score) == tonumber(A.scored[i + 1]) then
    removed = removed + redis.call('ZREM', K.zset, A.scored[i])
  end
end
return removed
