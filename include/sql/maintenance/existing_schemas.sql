-- Which of the requested schemas exist: a misspelt schema would otherwise plan nothing, silently.
SELECT nspname::text
FROM pg_catalog.pg_namespace
WHERE nspname = ANY (%(schemas)s::text[])
