-- KEYS: leases, jobs...
-- ARGV: records, ids, check_at
-- records: JSON list of flat field lists, one per job; ids: JSON list of their job ids;
-- check_at: JSON list of when each queued job is checked (its score in the leases).
-- Creates the records of the jobs that have none (create_absent); returns the positions
-- (1-based) of the jobs whose record existed.
return create_absent(K.jobs, cjson.decode(A.records), cjson.decode(A.ids),
                     cjson.decode(A.check_at), K.leases)
