-- Whether the pg_stat_statements library is loaded: it defines the pg_stat_statements.* settings
-- only once loaded (which, for its counters to exist, means via shared_preload_libraries), so their
-- presence in pg_settings tells without superuser rights.
SELECT
    current_database()::text AS database,
    EXISTS (SELECT 1 FROM pg_catalog.pg_settings WHERE name = 'pg_stat_statements.max') AS preloaded
