-- Indexes marked invalid: left behind by a failed CREATE INDEX CONCURRENTLY or REINDEX CONCURRENTLY.
-- They cost writes and serve no reads. An index being built concurrently right now is invalid too
-- until the build ends, so such builds are marked rather than reported as leftovers.
-- Size and definition are NULL for an index whose table or itself has an ACCESS EXCLUSIVE lock held or
-- queued (see locked_relations.sql): reading them would wait behind that lock.
SELECT
    n.nspname::text AS schema,
    t.relname::text AS "table",
    c.relname::text AS index,
    lk.locked,
    CASE WHEN NOT lk.locked THEN pg_catalog.pg_relation_size(c.oid) END AS size_bytes,
    i.indisready AS is_ready,
    EXISTS (
        SELECT 1 FROM pg_catalog.pg_stat_progress_create_index AS p WHERE p.index_relid = c.oid
    ) AS build_in_progress,
    CASE WHEN NOT lk.locked THEN pg_catalog.pg_get_indexdef(c.oid) END AS definition
FROM pg_catalog.pg_index AS i
CROSS JOIN LATERAL (SELECT ARRAY[i.indexrelid, i.indrelid] && %(locked)s::oid[] AS locked) AS lk
JOIN pg_catalog.pg_class AS c ON c.oid = i.indexrelid
JOIN pg_catalog.pg_class AS t ON t.oid = i.indrelid
JOIN pg_catalog.pg_namespace AS n ON n.oid = t.relnamespace
WHERE NOT i.indisvalid
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname !~ '^pg_toast'
  AND (%(schemas)s::text[] IS NULL OR n.nspname = ANY (%(schemas)s::text[]))
ORDER BY schema, "table", index
