-- KEYS: jobs...
-- ARGV: sent_at
-- marks the job records as sent at A.sent_at
for _, job in ipairs(K.jobs) do
  redis.call('HSET', job, 'sent_at', A.sent_at)
end
return #K.jobs
