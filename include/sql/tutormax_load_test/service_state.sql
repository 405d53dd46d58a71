-- What a change between two load-test runs leaves behind in the service database: its indexes by
-- table, and a hash of the settings not at their defaults (loadtest/evidence.py).
SELECT
    (SELECT coalesce(jsonb_agg(i.relname || '.' || i.indexrelname ORDER BY i.relname, i.indexrelname), '[]')
     FROM pg_catalog.pg_stat_user_indexes AS i) AS indexes,
    (SELECT md5(string_agg(s.name || '=' || s.setting, ',' ORDER BY s.name))
     FROM pg_catalog.pg_settings AS s
     WHERE s.source NOT IN ('default', 'override', 'client', 'session')) AS pg_settings_hash,
    (SELECT count(*)::int FROM pg_catalog.pg_stat_activity WHERE datname = current_database()) AS connections,
    current_setting('max_connections')::int AS max_connections
