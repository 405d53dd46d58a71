-- Once, when table_metrics is not yet tied to the run registry: each maintenance run whose figures
-- were stored without a registry row gets one (status unknown: it was not kept), then the foreign key.
INSERT INTO {schema}.runs (dag_id, run_id, kind, started_at, finished_at, status, headline)
SELECT dag_id, run_id, 'maintenance', min(collected_at), max(collected_at), 'unknown',
       'maintenance: ' || count(DISTINCT (schema_name, table_name)) || ' tables measured'
FROM {schema}.table_metrics
GROUP BY dag_id, run_id
ON CONFLICT (dag_id, run_id) DO NOTHING;
ALTER TABLE {schema}.table_metrics ADD CONSTRAINT {constraint}
    FOREIGN KEY (dag_id, run_id) REFERENCES {schema}.runs ON DELETE CASCADE;
