-- For the tables a run could not maintain for lack of privileges: whether this role may use each one's
-- schema (VACUUM fails with "permission denied for schema" without USAGE, even with pg_maintain) and
-- whether it may maintain the table: as (a member of) its owner, or, on PostgreSQL 17+, with the MAINTAIN
-- privilege ({maintain_privilege} is that constant test, or nothing before 17). Catalog reads only.
SELECT
    n.nspname::text AS schema,
    c.relname::text AS "table",
    pg_catalog.has_schema_privilege(n.oid, 'USAGE') AS schema_usage,
    pg_catalog.pg_has_role(c.relowner, 'USAGE') {maintain_privilege} AS may_maintain
FROM unnest(%(schemas)s::text[], %(tables)s::text[]) AS f (schema_name, table_name)
JOIN pg_catalog.pg_namespace AS n ON n.nspname = f.schema_name
JOIN pg_catalog.pg_class AS c ON c.relnamespace = n.oid AND c.relname = f.table_name
ORDER BY 1, 2
