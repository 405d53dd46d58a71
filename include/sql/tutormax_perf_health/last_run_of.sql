-- The newest run of the DAGs whose id matches %(dag_pattern)s (LIKE), e.g. the cache warming.
SELECT dag_id, run_id, kind, started_at, finished_at, status, summary, artifacts_uri
FROM {schema}.runs
WHERE dag_id LIKE %(dag_pattern)s
ORDER BY started_at DESC
LIMIT 1
