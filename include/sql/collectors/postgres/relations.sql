-- Resolve (schema, name) pairs to relations, keeping their order; unknown names give NULL oid.
-- Names are compared as values, never spliced into SQL, so any spelling is harmless.
SELECT r.schema, r.name, c.oid::bigint AS oid, c.relkind::text AS relkind
FROM unnest(%(schemas)s::text[], %(names)s::text[]) WITH ORDINALITY AS r (schema, name, position)
LEFT JOIN pg_catalog.pg_namespace AS n ON n.nspname = r.schema
LEFT JOIN pg_catalog.pg_class AS c ON c.relnamespace = n.oid AND c.relname = r.name
ORDER BY r.position
