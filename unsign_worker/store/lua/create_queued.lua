-- KEYS: leases, job_views...
-- ARGV: records, ids, check_after, producers
-- job_views: each job's record key, then its producer's view (P producer:<name>:job:<id>);
-- records: JSON list of flat field lists, one per job; ids: JSON list of their job ids;
-- check_after: seconds from now (the server's clock) until the queued jobs' messages are first
-- looked for (their score in the leases);
-- producers: JSON list of each job's producer ('' for none).
-- Creates the records of the jobs that have none (create_absent); returns the positions
-- (1-based) of the jobs whose record existed.
local jobs, views, scores = {}, {}, {}
for i = 1, #K.job_views, 2 do
  jobs[#jobs + 1] = K.job_views[i]
  views[#views + 1] = K.job_views[i + 1]
end
local check_at = server_time() + tonumber(A.check_after)
for i = 1, #jobs do scores[i] = check_at end
return create_absent(jobs, cjson.decode(A.records), cjson.decode(A.ids), scores, K.leases,
                     views, cjson.decode(A.producers))
