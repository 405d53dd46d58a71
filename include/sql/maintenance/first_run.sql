-- When this DAG first stored a run: how long it has watched the database. With statistics that were
-- never reset, it is the only known lower bound for how long "never scanned" has been counted.
SELECT extract(EPOCH FROM now() - min(started_at))::float8
FROM {schema}.runs
WHERE dag_id = %(dag_id)s
