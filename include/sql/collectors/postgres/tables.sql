-- One row per user table: sizes, tuples, scans, maintenance history and freeze ages.
-- Reads statistics views and catalogs only (pg_monitor is enough); no table page is touched.
-- Sizes are NULL for a table that it, its TOAST table or one of its indexes has an ACCESS EXCLUSIVE
-- lock held or queued (see locked_relations.sql): reading them would wait behind it.
-- Each size function opens every relation it measures, so each relation is measured once and the
-- totals are added up from the parts: the table is its heap's forks plus TOAST (what pg_table_size
-- gives, but that would measure the TOAST table a second time; at 3,000 tables that was a third of
-- the statement), the total that plus the indexes. OFFSET 0 keeps each subquery from being merged
-- into the query above it, which would call the functions again for each use of a column.
-- Parameters part and parts (NULL: all) read one share of the tables, by a hash of the oid (each table
-- takes the same number of oids, so oid parity would put them all in one share), so that sessions
-- can measure their shares at once: opening thousands of relations in a new backend is its cost.
SELECT *, table_bytes + index_bytes AS total_bytes
FROM (
    SELECT
        s.schemaname::text AS schema,
        s.relname::text AS "table",
        lk.locked,
        sz.heap_bytes,
        sz.index_bytes,
        sz.toast_bytes,
        -- Heap with its free space and visibility maps (and init fork), and TOAST: all but the indexes.
        sz.heap_bytes + sz.other_fork_bytes + sz.toast_bytes AS table_bytes,
        s.n_live_tup AS live_tuples,
        s.n_dead_tup AS dead_tuples,
        s.n_dead_tup::float8 / NULLIF(s.n_live_tup + s.n_dead_tup, 0) AS dead_ratio,
        s.seq_scan AS seq_scans,
        s.seq_tup_read AS seq_tuples_read,
        coalesce(s.idx_scan, 0) AS idx_scans,
        coalesce(s.idx_tup_fetch, 0) AS idx_tuples_fetched,
        s.n_mod_since_analyze AS mods_since_analyze,
        s.last_vacuum,
        s.last_autovacuum,
        s.last_analyze,
        s.last_autoanalyze,
        extract(EPOCH FROM now() - s.last_vacuum)::float8 AS last_vacuum_age_s,
        extract(EPOCH FROM now() - s.last_autovacuum)::float8 AS last_autovacuum_age_s,
        extract(EPOCH FROM now() - s.last_analyze)::float8 AS last_analyze_age_s,
        extract(EPOCH FROM now() - s.last_autoanalyze)::float8 AS last_autoanalyze_age_s,
        -- Partitioned parents hold no rows and no frozen xid; the age of the TOAST table counts too,
        -- because anti-wraparound vacuum is triggered by the older of the two.
        CASE WHEN c.relkind <> 'p' THEN
            greatest(pg_catalog.age(c.relfrozenxid), pg_catalog.age(t.relfrozenxid))
        END AS xid_age,
        CASE WHEN c.relkind <> 'p' THEN
            greatest(pg_catalog.mxid_age(c.relminmxid), pg_catalog.mxid_age(t.relminmxid))
        END AS mxid_age,
        -- Whether autovacuum may visit the table: its own reloption, else the server setting.
        coalesce(
            (SELECT o.option_value::bool
             FROM pg_catalog.pg_options_to_table(c.reloptions) AS o
             WHERE o.option_name = 'autovacuum_enabled'),
            pg_catalog.current_setting('autovacuum')::bool
        ) AS autovacuum_enabled
    FROM pg_catalog.pg_stat_user_tables AS s
    JOIN pg_catalog.pg_class AS c ON c.oid = s.relid
    LEFT JOIN pg_catalog.pg_class AS t ON t.oid = NULLIF(c.reltoastrelid, 0)
    CROSS JOIN LATERAL (
        SELECT c.oid = ANY (%(locked)s::oid[])
            OR coalesce(t.oid = ANY (%(locked)s::oid[]), false)
            OR EXISTS (
                SELECT 1 FROM pg_catalog.pg_index AS i
                WHERE i.indrelid = c.oid AND i.indexrelid = ANY (%(locked)s::oid[])
            ) AS locked
    ) AS lk
    LEFT JOIN LATERAL (
        SELECT
            pg_catalog.pg_relation_size(c.oid) AS heap_bytes,
            pg_catalog.pg_relation_size(c.oid, 'fsm') + pg_catalog.pg_relation_size(c.oid, 'vm')
                + pg_catalog.pg_relation_size(c.oid, 'init') AS other_fork_bytes,
            pg_catalog.pg_indexes_size(c.oid) AS index_bytes,
            -- The TOAST table with its own index: out-of-line values live there.
            coalesce(pg_catalog.pg_total_relation_size(t.oid), 0) AS toast_bytes
        WHERE NOT lk.locked
        OFFSET 0
    ) AS sz ON true
    WHERE (%(schemas)s::text[] IS NULL OR s.schemaname = ANY (%(schemas)s::text[]))
      AND (%(table)s::text IS NULL OR s.relname = %(table)s::text)
      AND (%(parts)s::int8 IS NULL
           OR mod(pg_catalog.hashoid(s.relid)::int8 + 2147483648, %(parts)s::int8) = %(part)s::int8)
    OFFSET 0
) AS measured
ORDER BY total_bytes DESC NULLS LAST, schema, "table"
