-- Client connections against max_connections less the slots reserved for superusers (and, PG16+,
-- for pg_use_reserved_connections members), which ordinary clients can never take.
SELECT
    *,
    (100.0 * connections / NULLIF(max_connections - reserved_connections, 0))::float8 AS usage_percent
FROM (
    SELECT
        count(*) AS connections,
        count(*) FILTER (WHERE a.state = 'active') AS active,
        count(*) FILTER (WHERE a.state = 'idle') AS idle,
        count(*) FILTER (WHERE a.state LIKE 'idle in transaction%%') AS idle_in_transaction,
        count(*) FILTER (WHERE a.wait_event_type = 'Lock') AS waiting_on_locks,
        pg_catalog.current_setting('max_connections')::int AS max_connections,
        pg_catalog.current_setting('superuser_reserved_connections')::int
            + coalesce(pg_catalog.current_setting('reserved_connections', true)::int, 0)
            AS reserved_connections
    FROM pg_catalog.pg_stat_activity AS a
    WHERE a.backend_type = 'client backend'
) AS counts
