-- The schema an extension was created in, in the current database: its objects are then
-- referenced as schema-qualified identifiers, whatever the session's search_path.
SELECT n.nspname
FROM pg_catalog.pg_extension AS e
JOIN pg_catalog.pg_namespace AS n ON n.oid = e.extnamespace
WHERE e.extname = %(extension)s
