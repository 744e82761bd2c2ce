-- KEYS: held, message
-- ARGV: message_id, job_ids, lease_seconds
-- A worker received a task message: its job ids (JSON list) under P held:<message_id>, its
-- lease in P held, on the server's clock (server_time).
redis.call('SET', K.message, A.job_ids)
redis.call('ZADD', K.held, server_time() + tonumber(A.lease_seconds), A.message_id)
return 1
