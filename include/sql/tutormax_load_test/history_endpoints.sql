-- Per-endpoint figures of the history runs chosen by history_runs.sql.
SELECT run_id, endpoint, requests, p95_ms, error_rate
FROM {schema}.loadtest_endpoints
WHERE dag_id = %(dag_id)s
  AND run_id = ANY(%(run_ids)s)
