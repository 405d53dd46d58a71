-- What holds back the xmin horizon, so that VACUUM cannot remove dead rows: old transactions of
-- backends (idle in transaction included), forgotten prepared transactions and replication slots.
-- This session itself is left out.
SELECT *
FROM (
    SELECT
        'backend'::text AS kind,
        a.pid,
        a.application_name::text AS name,
        a.usename::text AS username,
        a.state::text AS state,
        a.xact_start AS started_at,
        extract(EPOCH FROM now() - a.xact_start)::float8 AS duration_s,
        pg_catalog.age(coalesce(a.backend_xmin, a.backend_xid))::bigint AS xmin_age,
        left(a.query, 1000) AS query
    FROM pg_catalog.pg_stat_activity AS a
    WHERE a.pid <> pg_catalog.pg_backend_pid()
      AND coalesce(a.backend_xmin, a.backend_xid) IS NOT NULL
      AND a.xact_start <= now() - make_interval(secs => %(min_duration_s)s)
    UNION ALL
    SELECT
        'prepared_transaction',
        NULL,
        p.gid,
        p.owner::text,
        NULL,
        p.prepared,
        extract(EPOCH FROM now() - p.prepared)::float8,
        pg_catalog.age(p.transaction)::bigint,
        NULL
    FROM pg_catalog.pg_prepared_xacts AS p
    WHERE p.prepared <= now() - make_interval(secs => %(min_duration_s)s)
    UNION ALL
    -- A slot has no start time: it qualifies by the age of the oldest xid it retains.
    SELECT
        'replication_slot',
        s.active_pid,
        s.slot_name::text,
        NULL,
        CASE WHEN s.active THEN 'active' ELSE 'inactive' END,
        NULL,
        NULL,
        greatest(pg_catalog.age(s.xmin), pg_catalog.age(s.catalog_xmin))::bigint,
        NULL
    FROM pg_catalog.pg_replication_slots AS s
    WHERE greatest(pg_catalog.age(s.xmin), pg_catalog.age(s.catalog_xmin)) >= %(min_slot_xid_age)s
) AS holders
ORDER BY xmin_age DESC NULLS LAST
