-- KEYS: leases, job_views...
-- ARGV: records, ids, check_at, producers
-- job_views: each job's record key, then its producer's view (P producer:<name>:job:<id>);
-- records: JSON list of flat field lists, one per job; ids: JSON list of their job ids;
-- check_at: JSON list of when each queued job is checked (its score in the leases);
-- producers: JSON list of each job's producer ('' for none).
-- Creates the records of the jobs that have none (create_absent); returns the positions
-- (1-based) of the jobs whose record existed.
local jobs, views = {}, {}
for i = 1, #K.job_views, 2 do
  jobs[#jobs + 1] = K.job_views[i]
  views[#views + 1] = K.job_views[i + 1]
end
return create_absent(jobs, cjson.decode(A.records), cjson.decode(A.ids),
                     cjson.decode(A.check_at), K.leases, views, cjson.decode(A.producers))
