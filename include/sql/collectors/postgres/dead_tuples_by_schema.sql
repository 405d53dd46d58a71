-- Dead tuples per schema outside the given ones: what a run limited to some schemas did not look at.
-- Statistics views only; a schema is listed when it has any dead tuple.
SELECT
    s.schemaname::text AS schema,
    count(*)::int AS tables,
    sum(s.n_dead_tup)::bigint AS dead_tuples,
    sum(s.n_live_tup)::bigint AS live_tuples,
    (sum(s.n_dead_tup)::float8 / NULLIF(sum(s.n_live_tup + s.n_dead_tup), 0)) AS dead_ratio,
    max(s.n_dead_tup::float8 / NULLIF(s.n_live_tup + s.n_dead_tup, 0)) AS worst_table_dead_ratio
FROM pg_catalog.pg_stat_user_tables AS s
WHERE NOT s.schemaname = ANY (%(schemas)s::text[])
GROUP BY s.schemaname
HAVING sum(s.n_dead_tup) > 0
ORDER BY dead_tuples DESC, schema
