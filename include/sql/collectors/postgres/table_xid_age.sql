-- The user tables with the oldest relfrozenxid (the older of the table and its TOAST table), against
-- the autovacuum_freeze_max_age that applies to each: a table-level setting can only lower it.
SELECT
    schema,
    "table",
    xid_age,
    freeze_max_age,
    (100.0 * xid_age / freeze_max_age)::float8 AS percent_of_freeze_max_age
FROM (
    SELECT
        n.nspname::text AS schema,
        c.relname::text AS "table",
        greatest(pg_catalog.age(c.relfrozenxid), pg_catalog.age(t.relfrozenxid))::bigint AS xid_age,
        least(
            (SELECT o.option_value::bigint
             FROM pg_catalog.pg_options_to_table(c.reloptions) AS o
             WHERE o.option_name = 'autovacuum_freeze_max_age'),
            pg_catalog.current_setting('autovacuum_freeze_max_age')::bigint
        ) AS freeze_max_age
    FROM pg_catalog.pg_class AS c
    JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
    LEFT JOIN pg_catalog.pg_class AS t ON t.oid = NULLIF(c.reltoastrelid, 0)
    WHERE c.relkind IN ('r', 'm')
      AND n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND n.nspname !~ '^pg_toast'
      AND (%(schemas)s::text[] IS NULL OR n.nspname = ANY (%(schemas)s::text[]))
) AS ages
WHERE xid_age >= %(min_xid_age)s
ORDER BY xid_age DESC, schema, "table"
LIMIT %(limit)s
