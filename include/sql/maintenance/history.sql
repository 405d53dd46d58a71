-- Bloat and dead tuples of earlier maintenance runs, summed over the tables of each run and phase,
-- for the trend chart. The current run is left out: the caller adds it from its own snapshots, so a
-- rerun never counts itself twice.
SELECT
    run_id,
    phase,
    min(collected_at) AS collected_at,
    sum(bloat_bytes)::bigint AS bloat_bytes,
    sum(dead_tuples)::bigint AS dead_tuples
FROM {schema}.table_metrics
WHERE dag_id = %(dag_id)s
  AND run_id <> %(run_id)s
  AND collected_at >= now() - make_interval(weeks => %(weeks)s)
GROUP BY run_id, phase
ORDER BY collected_at, phase
