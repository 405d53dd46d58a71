-- A partitioned table after its partitions were vacuumed: refresh its own statistics, which autovacuum
-- never does. {only} is `ONLY ` on PostgreSQL 18+ (the partitions were just analyzed on their own) and
-- empty before (ANALYZE then samples the partitions again; VACUUM still runs on each of them once).
ANALYZE (SKIP_LOCKED) {only}{table}
