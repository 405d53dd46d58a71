-- When this database's activity counters (pg_stat_*: scans, tuples) were last reset, and how long
-- ago. NULL: never reset since the database was created (counters are also lost on a crash or a
-- restore, which this does not show).
SELECT
    d.stats_reset,
    extract(EPOCH FROM now() - d.stats_reset)::float8 AS stats_age_s
FROM pg_catalog.pg_stat_database AS d
WHERE d.datname = current_database()
