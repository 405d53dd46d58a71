-- Cumulative pg_stat_statements counters of the current database. Columns that differ between
-- versions are filled in after checking which exist: {total}/{mean}/{stddev}/{min}/{max} are the
-- *_exec_time columns (PG13+) or *_time (before); {toplevel} is the PG14+ column or true;
-- {stats_since} is the PG17+ column or NULL. Only top-level statements are kept: with
-- pg_stat_statements.track = all, the statements run inside a function are counted a second time.
SELECT
    s.userid::bigint AS userid,
    s.queryid,
    s.query,
    s.calls,
    s.rows,
    {total}::float8 AS total_ms,
    {mean}::float8 AS mean_ms,
    {stddev}::float8 AS stddev_ms,
    {min}::float8 AS min_ms,
    {max}::float8 AS max_ms,
    {stats_since}::timestamptz AS stats_since,
    s.shared_blks_read,
    s.shared_blks_hit
FROM {schema}.pg_stat_statements AS s
WHERE s.dbid = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())
  AND {toplevel}
  AND s.queryid IS NOT NULL
