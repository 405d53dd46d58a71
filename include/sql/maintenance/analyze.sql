-- Mode analyze_only; the table is a schema-qualified sql.Identifier. SKIP_LOCKED: never queue behind a lock.
ANALYZE (SKIP_LOCKED) {table}
