-- Where the newest maintenance and load-test reports are.
SELECT 'maintenance' AS kind, run_id, started_at, artifacts_uri
FROM (SELECT run_id, started_at, artifacts_uri FROM {schema}.runs
      WHERE kind = 'maintenance' AND artifacts_uri IS NOT NULL ORDER BY started_at DESC LIMIT 1) AS m
UNION ALL
SELECT 'load test', run_id, started_at, artifacts_uri
FROM (SELECT run_id, started_at, artifacts_uri FROM {schema}.loadtest_runs
      WHERE artifacts_uri IS NOT NULL ORDER BY started_at DESC LIMIT 1) AS l
