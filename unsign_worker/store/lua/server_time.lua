-- The Redis server's clock, epoch seconds (microseconds as the fraction). Every lease, due time
-- and expiry the scripts write or compare is on this one clock, never on a worker's: a worker
-- host whose clock is skewed can neither steal a live lease nor strand its own. (A script that
-- reads TIME may still write: Redis replicates a script's effects, not the script, by default
-- since 5.0 and only so since 7.0, so replicas and the AOF get the values computed here.)
local function server_time()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end
