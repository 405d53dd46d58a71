-- The history verdict 2 compares a run with: earlier valid runs of the same DAG, profile, user
-- count and worker processes (other loads are not comparable), leaving out stress runs limited by
-- the machine (their knee measured the host, not the service), newest first, with their verdicts:
-- a run flagged as a regression stays out of the baseline until accepted or confirmed as the new
-- level.
SELECT run_id, started_at, p95_ms, error_rate, rps, cache_hit_rate, query_p95_ms, knee_rps,
       knee_p95_ms, verdict, regression_verdict, findings, duration_s, judged_from_s
FROM {schema}.loadtest_runs
WHERE dag_id = %(dag_id)s
  AND profile = %(profile)s
  AND users = %(users)s
  AND processes IS NOT DISTINCT FROM %(processes)s
  AND limited_by IS DISTINCT FROM %(machine)s
  AND valid
  AND run_id <> %(run_id)s
ORDER BY started_at DESC
LIMIT %(limit)s
