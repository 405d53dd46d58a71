-- The capability tables already tied to the run registry by a foreign key.
SELECT c.relname
FROM pg_constraint AS k
JOIN pg_class AS c ON c.oid = k.conrelid
JOIN pg_namespace AS n ON n.oid = c.relnamespace
WHERE k.contype = 'f' AND n.nspname = %(schema)s AND k.conname = ANY(%(constraints)s)
