-- KEYS: job records ; ARGV[1]: the time they were sent
for i = 1, #KEYS do
  redis.call('HSET', KEYS[i], 'sent_at', ARGV[1])
end
return #KEYS
