-- KEYS: rejected, streams...
-- ARGV: group, consumer, count, names, max_bytes, max_pending, refused_maxlen
-- streams: each producer's stream, then its refused stream (P inbox:<name>,
-- P producer:<name>:refused), in the order of names (JSON list); max_bytes and max_pending:
-- JSON lists, one per producer.
-- Reads up to count new entries of each producer's stream for the consumer group, one at a
-- time, inside Redis: an entry larger than its producer's max_bytes, or read while the stream
-- holds more than its max_pending entries, is refused here (acknowledged, deleted, listed in
-- the producer's refused stream, counted in rejected as '<name>:<reason>'), so it never
-- reaches a worker. Returns {accepted, refused}: accepted entries as {index, id, fields},
-- refused ones as {index, id, reason, detail}.
local names = cjson.decode(A.names)
local max_bytes, max_pending = cjson.decode(A.max_bytes), cjson.decode(A.max_pending)
local count = tonumber(A.count)
local accepted, refused = {}, {}
for i, name in ipairs(names) do
  local stream, refused_key = K.streams[2 * i - 1], K.streams[2 * i]
  local over = redis.call('XLEN', stream) - max_pending[i]
  local taken, dropped = 0, 0
  while taken < count and dropped < 10 * count do
    local got = redis.call('XREADGROUP', 'GROUP', A.group, A.consumer, 'COUNT', 1,
                           'STREAMS', stream, '>')
    if not got then break end
    local entry = got[1][2][1]
    local id, fields = entry[1], entry[2]
    local size = 0
    for _, part in ipairs(fields) do size = size + #part end
    local reason, detail = nil, nil
    if over > 0 then
      reason = 'max_pending'
      detail = 'the stream held more than ' .. max_pending[i] .. ' entries not yet taken'
      over = over - 1
    elseif size > max_bytes[i] then
      reason = 'max_size'
      detail = 'the entry holds ' .. size .. ' bytes; at most ' .. max_bytes[i] ..
               ' are read'
    end
    if reason then
      redis.call('XACK', stream, A.group, id)
      redis.call('XDEL', stream, id)
      redis.call('XADD', refused_key, 'MAXLEN', '~', A.refused_maxlen, '*', 'entry', id,
                 'reason', reason, 'detail', detail)
      redis.call('HINCRBY', K.rejected, name .. ':' .. reason, 1)
      refused[#refused + 1] = {i, id, reason, detail}
      dropped = dropped + 1
    else
      accepted[#accepted + 1] = {i, id, fields}
      taken = taken + 1
    end
    fields, entry, got = nil, nil, nil
  end
end
return {accepted, refused}
