-- Tables read mostly by sequential scans while large enough for an index to matter: the ones whose
-- queries are worth an index suggestion. Heaviest (most rows read sequentially) first.
SELECT
    s.relid::bigint AS relid,
    s.schemaname::text AS schema,
    s.relname::text AS "table",
    s.seq_scan AS seq_scans,
    s.seq_tup_read AS seq_tuples_read,
    coalesce(s.idx_scan, 0) AS idx_scans,
    estimate.table_rows
FROM pg_catalog.pg_stat_user_tables AS s
JOIN pg_catalog.pg_class AS c ON c.oid = s.relid
-- The planner's row count (reltuples, -1 until the first VACUUM or ANALYZE), else the live-row counter.
CROSS JOIN LATERAL (
    SELECT (CASE WHEN c.reltuples >= 0 THEN c.reltuples ELSE s.n_live_tup END)::float8 AS table_rows
) AS estimate
WHERE s.seq_scan >= %(min_seq_scans)s
  AND s.seq_scan >= coalesce(s.idx_scan, 0)
  AND estimate.table_rows >= %(min_table_rows)s
ORDER BY s.seq_tup_read DESC
LIMIT %(limit)s
