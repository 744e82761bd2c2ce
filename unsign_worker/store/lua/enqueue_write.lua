-- KEYS: meta, leases, jobs...
-- ARGV: records, ids, check_at
-- records: JSON list of flat field lists, one per job; ids: JSON list of their job ids;
-- check_at: when a queued job is checked (its score in the leases).
-- Writes the records that do not exist yet (create_absent) and counts them in the campaign's
-- enqueued; returns the positions (1-based) of those that did.
local scores = {}
for i = 1, #K.jobs do scores[i] = A.check_at end
local existing = create_absent(K.jobs, cjson.decode(A.records), cjson.decode(A.ids), scores,
                               K.leases)
redis.call('HINCRBY', K.meta, 'enqueued', #K.jobs - #existing)
return existing
