-- Every column of the given tables with its number of distinct values from pg_stats (NULL when the
-- table was never analyzed, or when this role may not read the column's statistics).
-- A negative n_distinct is a fraction of the rows; it is turned into a count here.
SELECT
    a.attrelid::bigint AS relid,
    a.attname::text AS "column",
    CASE
        WHEN st.n_distinct >= 0 THEN st.n_distinct
        ELSE -st.n_distinct * greatest(c.reltuples, 0)
    END::float8 AS distinct_values
FROM pg_catalog.pg_attribute AS a
JOIN pg_catalog.pg_class AS c ON c.oid = a.attrelid
JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
LEFT JOIN pg_catalog.pg_stats AS st
    ON st.schemaname = n.nspname
    AND st.tablename = c.relname
    AND st.attname = a.attname
    AND NOT st.inherited
WHERE a.attrelid = ANY (%(relids)s::oid[])
  AND a.attnum > 0
  AND NOT a.attisdropped
