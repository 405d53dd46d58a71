-- Relations of this database with an ACCESS EXCLUSIVE lock held or queued (ALTER TABLE, TRUNCATE,
-- REINDEX, VACUUM FULL...). Size functions, pg_get_indexdef and pg_get_expr take ACCESS SHARE locks,
-- which would wait behind such a lock; collectors leave those relations out of these calls instead.
SELECT DISTINCT l.relation::bigint
FROM pg_catalog.pg_locks AS l
WHERE l.locktype = 'relation'
  AND l.mode = 'AccessExclusiveLock'
  AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())
