-- KEYS: held
-- ARGV: lease_seconds, message_ids...
-- Extends the leases of messages a worker still holds (only those recorded: XX), on the
-- server's clock (server_time); returns how many it changed.
if #A.message_ids == 0 then return 0 end
local until_at, args = server_time() + tonumber(A.lease_seconds), {}
for _, id in ipairs(A.message_ids) do
  args[#args + 1] = until_at
  args[#args + 1] = id
end
return redis.call('ZADD', K.held, 'XX', 'CH', unpack(args))
