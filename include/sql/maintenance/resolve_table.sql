-- One table name as it would be written in SQL: `orders`, `public.orders`, `"Mixed Case"."we""ird name"`.
-- to_regclass parses, quotes and case-folds it exactly as the server does, resolves an unqualified name
-- through search_path (the caller sets it to the maintenance schemas), takes no lock and gives NULL for
-- an unknown relation.
SELECT
    n.nspname::text AS schema,
    c.relname::text AS "table",
    c.relkind::text AS kind
FROM pg_catalog.pg_class AS c
JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
WHERE c.oid = pg_catalog.to_regclass(%(name)s)
