-- The sessions holding a granted lock on the given tables (schema and table arrays, pairwise): who kept
-- VACUUM out. No query text: another session's statement may hold anything, secrets included.
SELECT
    n.nspname::text AS schema,
    c.relname::text AS "table",
    l.pid,
    l.mode,
    a.usename::text AS username,
    a.application_name,
    a.state,
    a.xact_start,
    a.query_start
FROM unnest(%(schemas)s::text[], %(tables)s::text[]) AS f (schema_name, table_name)
JOIN pg_catalog.pg_namespace AS n ON n.nspname = f.schema_name
JOIN pg_catalog.pg_class AS c ON c.relnamespace = n.oid AND c.relname = f.table_name
JOIN pg_catalog.pg_locks AS l ON l.locktype = 'relation' AND l.relation = c.oid AND l.granted
LEFT JOIN pg_catalog.pg_stat_activity AS a ON a.pid = l.pid
WHERE l.pid IS DISTINCT FROM pg_catalog.pg_backend_pid()
ORDER BY 1, 2, a.xact_start NULLS LAST, l.pid
