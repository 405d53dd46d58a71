-- Once, when cache_warm_runs is not yet tied to the run registry: each warming run recorded before
-- the registry existed gets its registry row (a row already there is kept), then the foreign key.
INSERT INTO {schema}.runs (dag_id, run_id, kind, run_type, started_at, finished_at, status, headline)
SELECT dag_id, run_id, 'cache_warm', triggered_by, started_at, started_at,
       CASE WHEN alert IS NULL THEN 'success' ELSE 'warning' END,
       'cache warming: hit rate ' || coalesce(round(hit_rate_before::numeric, 1) || '%', '?') || ' before, '
           || coalesce(round(hit_rate_after::numeric, 1) || '%', '?') || ' after'
           || coalesce('; ' || alert, '')
FROM {schema}.cache_warm_runs
ON CONFLICT (dag_id, run_id) DO NOTHING;
ALTER TABLE {schema}.cache_warm_runs ADD CONSTRAINT {constraint}
    FOREIGN KEY (dag_id, run_id) REFERENCES {schema}.runs ON DELETE CASCADE;
