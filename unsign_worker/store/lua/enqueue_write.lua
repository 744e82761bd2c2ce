-- KEYS: meta, leases, jobs...
-- ARGV: records, ids, check_after
-- records: JSON list of flat field lists, one per job; ids: JSON list of their job ids;
-- check_after: seconds from now (the server's clock) until a queued job's message is first
-- looked for (its score in the leases).
-- Writes the records that do not exist yet (create_absent) and counts them in the campaign's
-- enqueued; returns the positions (1-based) of those that did.
local scores, check_at = {}, server_time() + tonumber(A.check_after)
for i = 1, #K.jobs do scores[i] = check_at end
local existing = create_absent(K.jobs, cjson.decode(A.records), cjson.decode(A.ids), scores,
                               K.leases)
redis.call('HINCRBY', K.meta, 'enqueued', #K.jobs - #existing)
return existing
