-- The newest run of kind %(kind)s in the run registry (core/registry.py), e.g. 'cache_warm'.
SELECT dag_id, run_id, kind, run_type, started_at, finished_at, status, headline, summary, artifacts_uri,
       report_uri
FROM {schema}.runs
WHERE kind = %(kind)s
ORDER BY started_at DESC
LIMIT 1
