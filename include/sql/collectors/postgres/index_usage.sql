-- Every index of the user tables with its scan counters, grouped by table: what serves each table.
-- {last_idx_scan} is the PG16+ column when it exists, else NULL.
-- Size and definition are NULL for an index whose table or itself has an ACCESS EXCLUSIVE lock held or
-- queued (see locked_relations.sql): reading them would wait behind that lock.
-- With %(unused_only)s, only the indexes find_unused() can report (never scanned, valid, enforcing no
-- rule): each size and definition opens its index, and on 3,000 tables reading them for every index
-- was most of the report's time on the server.
SELECT
    s.schemaname::text AS schema,
    s.relname::text AS "table",
    s.indexrelname::text AS index,
    s.idx_scan AS scans,
    s.idx_tup_read AS tuples_read,
    s.idx_tup_fetch AS tuples_fetched,
    {last_idx_scan}::timestamptz AS last_scan,
    lk.locked,
    CASE WHEN NOT lk.locked THEN pg_catalog.pg_relation_size(s.indexrelid) END AS size_bytes,
    i.indisprimary AS is_primary,
    i.indisunique AS is_unique,
    i.indisvalid AS is_valid,
    i.indisexclusion AS is_exclusion,
    i.indisreplident AS is_replica_identity,
    CASE WHEN NOT lk.locked THEN pg_catalog.pg_get_indexdef(s.indexrelid) END AS definition
FROM pg_catalog.pg_stat_user_indexes AS s
JOIN pg_catalog.pg_index AS i ON i.indexrelid = s.indexrelid
CROSS JOIN LATERAL (SELECT ARRAY[i.indexrelid, i.indrelid] && %(locked)s::oid[] AS locked) AS lk
WHERE (%(schemas)s::text[] IS NULL OR s.schemaname = ANY (%(schemas)s::text[]))
  AND (%(table)s::text IS NULL OR s.relname = %(table)s::text)
  AND (NOT %(unused_only)s::bool
       OR (s.idx_scan = 0 AND i.indisvalid
           AND NOT (i.indisprimary OR i.indisunique OR i.indisexclusion OR i.indisreplident)))
ORDER BY schema, "table", index
