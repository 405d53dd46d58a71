-- Column names of a table or view. Collectors pick columns by what exists (for example
-- total_exec_time vs total_time) instead of guessing from the server version.
SELECT a.attname::text
FROM pg_catalog.pg_attribute AS a
JOIN pg_catalog.pg_class AS c ON c.oid = a.attrelid
JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
WHERE n.nspname = %(schema)s
  AND c.relname = %(relation)s
  AND a.attnum > 0
  AND NOT a.attisdropped
