-- Btree index bloat estimated from catalog statistics alone; no index page is read.
--   leaf tuple bytes = MAXALIGN(8-byte IndexTupleData, + 4-byte null bitmap when a column has nulls)
--                      + MAXALIGN(sum of (1 - null_frac) * avg_width of the indexed columns)
--                      + a 4-byte line pointer;
--   leaf bytes       = rows * leaf tuple bytes, or, where PG13+ deduplication applies (non-unique,
--                      no INCLUDE columns, deduplicate_items on, key types with an "equal image"
--                      support function), one tuple per distinct key plus a 6-byte heap TID per
--                      further row; distinct keys come from pg_stats n_distinct;
--   expected pages   = 1 metapage + leaf bytes / ((block size - 24 page header - 16 btree special)
--                      * fillfactor (default 90));
--   bloat            = relpages - expected pages.
-- Inner pages are ignored, so a freshly built index may show a few percent of bloat. Widths of plain
-- columns come from the table's pg_stats; of expression columns, from the index's own statistics.
-- Statistics visibility and coverage are returned for the caller to judge (bloat.py), as for tables.
SELECT
    schema,
    "table",
    index,
    fillfactor,
    reltuples AS estimated_rows,
    deduplicated,
    block_size,
    actual_pages,
    (1 + ceil(
        CASE WHEN deduplicated
            THEN distinct_keys * tuple_bytes + (reltuples - distinct_keys) * 6
            ELSE reltuples * tuple_bytes
        END / ((block_size - 24 - 16) * fillfactor / 100.0)
    ))::float8 AS expected_pages,
    columns,
    columns_with_stats,
    stats_visible,
    has_name_column
FROM (
    SELECT
        n.nspname::text AS schema,
        t.relname::text AS "table",
        ic.relname::text AS index,
        ic.reltuples::float8 AS reltuples,
        ic.relpages::bigint AS actual_pages,
        pg_catalog.current_setting('block_size')::int AS block_size,
        coalesce(
            (SELECT o.option_value::int
             FROM pg_catalog.pg_options_to_table(ic.reloptions) AS o
             WHERE o.option_name = 'fillfactor'),
            90
        ) AS fillfactor,
        ceil((8 + CASE WHEN per_index.has_nulls THEN 4 ELSE 0 END) / 8.0) * 8
            + ceil(per_index.data_width / 8.0) * 8 + 4 AS tuple_bytes,
        -- Columns taken as independent: the product of their distinct counts, at most one per row.
        least(greatest(ic.reltuples, 1), exp(per_index.key_distinct_ln)) AS distinct_keys,
        NOT i.indisunique
            AND i.indnatts = i.indnkeyatts  -- no INCLUDE columns
            AND per_index.key_types_deduplicable
            AND coalesce(
                (SELECT o.option_value::bool
                 FROM pg_catalog.pg_options_to_table(ic.reloptions) AS o
                 WHERE o.option_name = 'deduplicate_items'),
                true
            ) AS deduplicated,
        per_index.columns,
        per_index.columns_with_stats,
        per_index.stats_visible,
        per_index.has_name_column
    FROM (
        SELECT
            col.indexrelid,
            count(*)::int AS columns,
            count(st.attname)::int AS columns_with_stats,
            bool_and(col.visible) AS stats_visible,
            bool_or(col.atttypid = 'pg_catalog.name'::regtype) AS has_name_column,
            max(coalesce(st.null_frac, 0)) > 0 AS has_nulls,
            sum((1 - coalesce(st.null_frac, 0)) * coalesce(st.avg_width, 0)) AS data_width,
            -- n_distinct < 0 is a fraction of the rows; NULL counts as one more key value.
            sum(ln(greatest(
                CASE WHEN st.n_distinct >= 0 THEN st.n_distinct
                    ELSE -st.n_distinct * greatest(col.reltuples, 0) END
                + CASE WHEN st.null_frac > 0 THEN 1 ELSE 0 END,
                1
            ))) FILTER (WHERE col.is_key) AS key_distinct_ln,
            bool_and(col.deduplicable) FILTER (WHERE col.is_key) AS key_types_deduplicable
        FROM (
            -- One row per indexed column, with where its statistics are kept: a plain column's in the
            -- table's, an expression's in the index's own (ANALYZE computes them). OFFSET 0 keeps this
            -- a step of its own, so pg_stats is joined on plain columns, by hash: joined on these CASE
            -- expressions, the planner (misled by pg_stats' tiny row estimate) merged on the schema
            -- alone, 60 million comparisons for 6,000 indexes.
            SELECT
                i.indexrelid,
                ic.reltuples,
                n.nspname AS schema,
                CASE WHEN k.attnum = 0 THEN ic.relname ELSE t.relname END AS stats_table,
                a.attname,
                a.atttypid,
                k.position <= i.indnkeyatts AS is_key,
                pg_catalog.has_column_privilege(a.attrelid, a.attnum, 'SELECT')
                    AND NOT (t.relrowsecurity AND pg_catalog.row_security_active(t.oid)) AS visible,
                -- btree deduplicates only keys whose equality means byte-identity (support proc 4).
                EXISTS (
                    SELECT 1
                    FROM pg_catalog.pg_opclass AS oc
                    JOIN pg_catalog.pg_amproc AS p
                        ON p.amprocfamily = oc.opcfamily
                        AND p.amproclefttype = oc.opcintype
                        AND p.amprocrighttype = oc.opcintype
                        AND p.amprocnum = 4
                    WHERE oc.oid = i.indclass[k.position::int - 1]
                ) AS deduplicable
            FROM pg_catalog.pg_index AS i
            JOIN pg_catalog.pg_class AS ic ON ic.oid = i.indexrelid
            JOIN pg_catalog.pg_am AS am ON am.oid = ic.relam AND am.amname = 'btree'
            JOIN pg_catalog.pg_class AS t ON t.oid = i.indrelid
            JOIN pg_catalog.pg_namespace AS n ON n.oid = t.relnamespace
            -- indkey holds each indexed column's number in the table, or 0 for an expression.
            CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k (attnum, position)
            JOIN pg_catalog.pg_attribute AS a
                ON a.attrelid = CASE WHEN k.attnum = 0 THEN i.indexrelid ELSE i.indrelid END
                AND a.attnum = CASE WHEN k.attnum = 0 THEN k.position::int2 ELSE k.attnum END
            WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
              AND n.nspname !~ '^pg_toast'
              AND ic.relpages > 0
              AND i.indisvalid
              AND (%(schemas)s::text[] IS NULL OR n.nspname = ANY (%(schemas)s::text[]))
            OFFSET 0
        ) AS col
        -- A lookup per column (LATERAL): its equalities reach pg_stats' catalogs' indexes. Joined as a
        -- set, the planner trusted pg_stats' tiny row estimate and compared every pair in a nested
        -- loop: 19 million comparisons, seconds, for 3,000 indexes.
        LEFT JOIN LATERAL (
            SELECT s.attname, s.null_frac, s.avg_width, s.n_distinct
            FROM pg_catalog.pg_stats AS s
            WHERE s.schemaname = col.schema
              AND s.tablename = col.stats_table
              AND s.attname = col.attname
              AND NOT s.inherited
            OFFSET 0  -- stays a lookup: pulled up into a join, it would be that set join again
        ) AS st ON true
        GROUP BY col.indexrelid
    ) AS per_index
    JOIN pg_catalog.pg_index AS i ON i.indexrelid = per_index.indexrelid
    JOIN pg_catalog.pg_class AS ic ON ic.oid = i.indexrelid
    JOIN pg_catalog.pg_class AS t ON t.oid = i.indrelid
    JOIN pg_catalog.pg_namespace AS n ON n.oid = t.relnamespace
) AS sized
