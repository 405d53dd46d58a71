-- pg_stat_statements.max exists only once the library is loaded (shared_preload_libraries).
SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_settings WHERE name = 'pg_stat_statements.max')
