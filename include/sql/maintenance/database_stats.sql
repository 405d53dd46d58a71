-- PostgreSQL 16+: after per-table VACUUMs run with SKIP_DATABASE_STATS, update datfrozenxid (and
-- truncate pg_xact) once for the whole database instead of once per table, which is O(N^2) in tables.
VACUUM (ONLY_DATABASE_STATS)
