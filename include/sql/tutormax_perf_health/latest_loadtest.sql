-- The newest valid load test since %(since)s: the source of the p95 API time and the error rate.
SELECT dag_id, run_id, profile, started_at, p95_ms, error_rate, rps, verdict, artifacts_uri
FROM {schema}.loadtest_runs
WHERE valid AND started_at >= %(since)s AND p95_ms IS NOT NULL
ORDER BY started_at DESC
LIMIT 1
