-- KEYS: campaign meta, job records... ; returns the campaign state, then state and sent_at of
-- each job ('' for none)
local out = {redis.call('HGET', KEYS[1], 'state') or ''}
for i = 2, #KEYS do
  local v = redis.call('HMGET', KEYS[i], 'state', 'sent_at')
  out[#out + 1] = v[1] or ''
  out[#out + 1] = v[2] or ''
end
return out
