-- Indexes made redundant by another index of the same table: same access method, expressions and
-- predicate; key columns (with operator classes, collations and ASC/DESC/NULLS options) that are a
-- leading prefix of the other's (btree) or equal to them (other access methods); INCLUDE columns that
-- the other index holds too. A unique index is redundant only beside another unique index on the same
-- keys; of two identical indexes the primary key, then a unique one, then the older one is kept.
-- pg_index is self-joined directly. A shared CTE here was planned as returning one row and joined by
-- nested loop: about 9 s on 8,000 indexes, against about 0.1 s for this form.
-- Tables with an ACCESS EXCLUSIVE lock held or queued (see locked_relations.sql) are skipped: their
-- index expressions and definitions cannot be read without waiting behind it.
SELECT
    n.nspname::text AS schema,
    t.relname::text AS "table",
    rc.relname::text AS index,
    cc.relname::text AS covering_index,
    pg_catalog.pg_relation_size(r.indexrelid) AS size_bytes,
    r.indnkeyatts = c.indnkeyatts AS same_keys,
    -- A constraint that owns the index must be dropped instead (ALTER TABLE ... DROP CONSTRAINT).
    (SELECT k.conname::text
     FROM pg_catalog.pg_constraint AS k
     WHERE k.conindid = r.indexrelid AND k.conrelid = r.indrelid AND k.contype IN ('p', 'u', 'x')
    ) AS owning_constraint,
    pg_catalog.pg_get_indexdef(r.indexrelid) AS definition,
    pg_catalog.pg_get_indexdef(c.indexrelid) AS covering_definition
FROM pg_catalog.pg_index AS r
JOIN pg_catalog.pg_index AS c ON c.indrelid = r.indrelid AND c.indexrelid <> r.indexrelid
JOIN pg_catalog.pg_class AS rc ON rc.oid = r.indexrelid
JOIN pg_catalog.pg_class AS cc ON cc.oid = c.indexrelid AND cc.relam = rc.relam
JOIN pg_catalog.pg_am AS am ON am.oid = rc.relam
JOIN pg_catalog.pg_class AS t ON t.oid = r.indrelid
JOIN pg_catalog.pg_namespace AS n ON n.oid = t.relnamespace
WHERE NOT ARRAY[r.indrelid, r.indexrelid, c.indexrelid] && %(locked)s::oid[]
  AND r.indisvalid
  AND c.indisvalid
  AND NOT r.indisprimary
  AND NOT r.indisexclusion
  AND NOT c.indisexclusion
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname !~ '^pg_toast'
  AND (%(schemas)s::text[] IS NULL OR n.nspname = ANY (%(schemas)s::text[]))
  -- Key columns: a leading prefix for btree, which can search on a prefix; equal for the others.
  AND (r.indnkeyatts = c.indnkeyatts OR (am.amname = 'btree' AND r.indnkeyatts < c.indnkeyatts))
  AND (r.indkey::int2[])[0:r.indnkeyatts - 1] = (c.indkey::int2[])[0:r.indnkeyatts - 1]
  AND (r.indclass::oid[])[0:r.indnkeyatts - 1] = (c.indclass::oid[])[0:r.indnkeyatts - 1]
  AND (r.indcollation::oid[])[0:r.indnkeyatts - 1] = (c.indcollation::oid[])[0:r.indnkeyatts - 1]
  AND (r.indoption::int2[])[0:r.indnkeyatts - 1] = (c.indoption::int2[])[0:r.indnkeyatts - 1]
  -- INCLUDE columns of r must be somewhere in c too.
  AND (r.indkey::int2[])[r.indnkeyatts:] <@ (c.indkey::int2[])
  -- Expressions and predicates compared as deparsed text, and only on unlocked tables (CASE fixes
  -- the order of evaluation: pg_get_expr would wait on the lock).
  AND CASE
      WHEN ARRAY[r.indrelid, r.indexrelid, c.indexrelid] && %(locked)s::oid[] THEN false
      ELSE pg_catalog.pg_get_expr(r.indexprs, r.indrelid) IS NOT DISTINCT FROM pg_catalog.pg_get_expr(c.indexprs, c.indrelid)
          AND pg_catalog.pg_get_expr(r.indpred, r.indrelid) IS NOT DISTINCT FROM pg_catalog.pg_get_expr(c.indpred, c.indrelid)
  END
  -- A unique index enforces a rule: only another unique index on the same keys replaces it.
  AND (NOT r.indisunique OR (c.indisunique AND r.indnkeyatts = c.indnkeyatts))
  -- Of two indexes with the same content, report one: keep the primary key, then a unique
  -- index, then the older (lower oid) one.
  AND (
      r.indnkeyatts <> c.indnkeyatts
      OR NOT (c.indkey::int2[])[c.indnkeyatts:] <@ (r.indkey::int2[])
      OR r.indisunique::int < CASE WHEN c.indisprimary THEN 2 WHEN c.indisunique THEN 1 ELSE 0 END
      OR (
          r.indisunique::int = CASE WHEN c.indisprimary THEN 2 WHEN c.indisunique THEN 1 ELSE 0 END
          AND r.indexrelid > c.indexrelid
      )
  )
ORDER BY schema, "table", index
