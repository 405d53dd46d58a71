-- One sample of what the service database's active backends wait for (loadtest/evidence.py): lock
-- and connection waits during the run. query_id is read through to_jsonb so the statement works on
-- servers without the column (before PG14, or compute_query_id off); it is also NULL while a
-- statement waits for a lock its parse analysis takes (a table's lock), so the text comes too.
SELECT a.wait_event_type,
       a.wait_event,
       (to_jsonb(a) ->> 'query_id')::bigint AS query_id,
       CASE WHEN a.wait_event_type = 'Lock' THEN left(a.query, 2000) END AS query,
       count(*)::int AS backends
FROM pg_catalog.pg_stat_activity AS a
WHERE a.datname = current_database()
  AND a.state = 'active'
  AND a.pid <> pg_backend_pid()
  AND a.wait_event_type IS NOT NULL
GROUP BY 1, 2, 3, 4
