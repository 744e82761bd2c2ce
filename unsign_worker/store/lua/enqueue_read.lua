-- KEYS: meta, jobs...
-- ARGV: (none)
-- returns the campaign's state, then the state and sent_at of each job ('' for none)
local out = {redis.call('HGET', K.meta, 'state') or ''}
for _, job in ipairs(K.jobs) do
  local v = redis.call('HMGET', job, 'state', 'sent_at')
  out[#out + 1] = v[1] or ''
  out[#out + 1] = v[2] or ''
end
return out
