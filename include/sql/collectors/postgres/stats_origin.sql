-- What bounds how long this database's activity counters (pg_stat_*: index scans, tuples) have been
-- counting, and who this database is:
-- - stats_reset: the last pg_stat_reset() of this database; NULL until one, so a new database's counters
--   start at its creation, which PostgreSQL records nowhere;
-- - server_stats_since: pg_stat_archiver.stats_reset, which the server sets when it starts without
--   its statistics file (a crash, an immediate shutdown, a first start or a restore) and which a clean
--   restart keeps (PostgreSQL 15+). It also moves on pg_stat_reset_shared('archiver'): then the
--   evidence looks younger than it is, never older;
-- - the database's oid and name: a restored or recreated database gets a new oid.
SELECT
    d.oid::bigint AS database_oid,
    d.datname::text AS database,
    s.stats_reset,
    a.stats_reset AS server_stats_since,
    now() AS observed_at
FROM pg_catalog.pg_database AS d
JOIN pg_catalog.pg_stat_database AS s ON s.datid = d.oid
CROSS JOIN pg_catalog.pg_stat_archiver AS a
WHERE d.datname = pg_catalog.current_database()
