-- The history verdict 2 compares a run with: earlier valid runs of the same DAG, profile and user
-- count (other loads are not comparable), newest first, with their verdicts: a run flagged as a
-- regression stays out of the baseline until accepted or confirmed as the new level.
SELECT run_id, started_at, p95_ms, error_rate, rps, cache_hit_rate, query_p95_ms, knee_rps,
       verdict, regression_verdict, findings
FROM {schema}.loadtest_runs
WHERE dag_id = %(dag_id)s
  AND profile = %(profile)s
  AND users = %(users)s
  AND valid
  AND run_id <> %(run_id)s
ORDER BY started_at DESC
LIMIT %(limit)s
