-- Once, when loadtest_runs is not yet tied to the run registry: each load test recorded before the
-- registry existed gets its registry row (a row already there is kept), then the foreign key.
INSERT INTO {schema}.runs (dag_id, run_id, kind, started_at, finished_at, status, headline, artifacts_uri)
SELECT dag_id, run_id, 'load_test', started_at,
       started_at + coalesce(duration_s, 0) * interval '1 second',
       coalesce(verdict, CASE WHEN valid THEN 'unknown' ELSE 'invalid' END),
       profile || ' load test, ' || coalesce(users::text, '?') || ' users: '
           || coalesce(verdict, CASE WHEN valid THEN 'no verdict' ELSE 'invalid (' || coalesce(invalid_reason, '?') || ')' END)
           || coalesce(', p95 ' || round(p95_ms::numeric, 1) || ' ms', ''),
       artifacts_uri
FROM {schema}.loadtest_runs
ON CONFLICT (dag_id, run_id) DO NOTHING;
ALTER TABLE {schema}.loadtest_runs ADD CONSTRAINT {constraint}
    FOREIGN KEY (dag_id, run_id) REFERENCES {schema}.runs ON DELETE CASCADE;
