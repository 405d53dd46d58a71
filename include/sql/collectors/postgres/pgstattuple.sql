-- Exact space accounting of one relation: reads every page (cost grows with the relation's size).
SELECT
    s.table_len AS bytes,
    s.tuple_percent AS live_percent,
    s.dead_tuple_percent,
    s.free_percent,
    100.0::float8 AS scanned_percent
FROM {schema}.pgstattuple(%(oid)s::oid::regclass) AS s
