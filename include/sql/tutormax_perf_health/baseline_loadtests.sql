-- The valid load tests of profile %(profile)s: the run registry's load-test runs, their profile and
-- validity from loadtest_runs (which hangs off the registry).
SELECT count(*) AS runs, max(r.started_at) AS latest
FROM {schema}.runs AS r
JOIN {schema}.loadtest_runs AS l USING (dag_id, run_id)
WHERE r.kind = 'load_test' AND l.valid AND l.profile = %(profile)s
