-- The key columns, in order, of each valid, non-partial btree index of the given tables; an
-- expression stands as NULL, so that no column list can match past it.
SELECT
    i.indrelid::bigint AS relid,
    ARRAY(
        SELECT a.attname::text
        FROM unnest((i.indkey::int2[])[0:i.indnkeyatts - 1]) WITH ORDINALITY AS k (attnum, position)
        LEFT JOIN pg_catalog.pg_attribute AS a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
        ORDER BY k.position
    ) AS columns
FROM pg_catalog.pg_index AS i
JOIN pg_catalog.pg_class AS ic ON ic.oid = i.indexrelid
JOIN pg_catalog.pg_am AS am ON am.oid = ic.relam AND am.amname = 'btree'
WHERE i.indrelid = ANY (%(relids)s::oid[])
  AND i.indisvalid
  AND i.indpred IS NULL
