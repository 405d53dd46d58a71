-- Transactions open for at least %(min_age_s)s seconds in this database (idle in transaction
-- included): each may hold locks that DDL would queue behind, and every query then queues behind
-- the DDL. This session is left out.
SELECT
    a.pid,
    coalesce(a.application_name, '')::text AS application_name,
    coalesce(a.usename::text, '') AS username,
    coalesce(a.state, '')::text AS state,
    extract(EPOCH FROM now() - a.xact_start)::float8 AS age_s,
    (SELECT count(*) FROM pg_catalog.pg_locks AS l WHERE l.pid = a.pid AND l.granted)::int AS locks_held,
    left(a.query, 300) AS query
FROM pg_catalog.pg_stat_activity AS a
WHERE a.datname = current_database()
  AND a.pid <> pg_catalog.pg_backend_pid()
  AND a.xact_start <= now() - make_interval(secs => %(min_age_s)s)
ORDER BY a.xact_start
