-- The database-wide figures every snapshot carries, whatever tables the run names.
SELECT
    pg_catalog.pg_database_size(d.oid) AS database_bytes,
    pg_catalog.age(d.datfrozenxid) AS database_xid_age
FROM pg_catalog.pg_database AS d
WHERE d.datname = pg_catalog.current_database()
