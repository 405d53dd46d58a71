-- Every leaf partition (a plain table) under each partitioned table of the schemas, roots and
-- intermediate levels alike: VACUUM works on the leaves, and ANALYZE ONLY refreshes each parent.
SELECT
    pn.nspname::text AS parent_schema,
    p.relname::text AS parent_table,
    ln.nspname::text AS schema,
    l.relname::text AS "table"
FROM pg_catalog.pg_class AS p
JOIN pg_catalog.pg_namespace AS pn ON pn.oid = p.relnamespace
CROSS JOIN LATERAL pg_catalog.pg_partition_tree(p.oid) AS tree
JOIN pg_catalog.pg_class AS l ON l.oid = tree.relid
JOIN pg_catalog.pg_namespace AS ln ON ln.oid = l.relnamespace
WHERE p.relkind = 'p'
  AND tree.isleaf
  AND l.relkind = 'r'
  AND pn.nspname = ANY (%(schemas)s::text[])
ORDER BY 1, 2, 3, 4
