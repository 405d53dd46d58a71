-- Transaction-ID (and multixact) age of every database against the point where autovacuum forces
-- an anti-wraparound vacuum (autovacuum_freeze_max_age) and the hard limit of 2^31 transactions.
SELECT
    d.datname::text AS database,
    pg_catalog.age(d.datfrozenxid)::bigint AS xid_age,
    pg_catalog.mxid_age(d.datminmxid)::bigint AS mxid_age,
    pg_catalog.current_setting('autovacuum_freeze_max_age')::bigint AS freeze_max_age,
    (100.0 * pg_catalog.age(d.datfrozenxid)
        / pg_catalog.current_setting('autovacuum_freeze_max_age')::bigint)::float8 AS percent_of_freeze_max_age,
    (100.0 * pg_catalog.age(d.datfrozenxid) / 2147483648)::float8 AS percent_of_wraparound
FROM pg_catalog.pg_database AS d
ORDER BY xid_age DESC, database
