-- The options are constant option names chosen in tutormax_ops.maintenance (never user input), and the
-- table a schema-qualified sql.Identifier. Never FULL: that rewrites the table under ACCESS EXCLUSIVE.
VACUUM ({options}) {table}
