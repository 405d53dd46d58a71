-- The checklist's data-volume probe, on tutormax_db: live rows (statistics, no table is read).
SELECT coalesce(sum(n_live_tup), 0)::bigint AS live_rows,
       count(*) AS tables,
       (SELECT relname FROM pg_stat_user_tables ORDER BY n_live_tup DESC LIMIT 1) AS largest
FROM pg_stat_user_tables
