-- Space accounting of one table that skips all-visible pages (from the visibility map) and
-- estimates their free space from the free space map: far cheaper than pgstattuple on a vacuumed table.
SELECT
    s.table_len AS bytes,
    s.approx_tuple_percent AS live_percent,
    s.dead_tuple_percent,
    s.approx_free_percent AS free_percent,
    s.scanned_percent
FROM {schema}.pgstattuple_approx(%(oid)s::oid::regclass) AS s
