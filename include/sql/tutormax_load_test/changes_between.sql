-- What this package did to the service between the baseline and this run: migrations, maintenance
-- and cache clears or warms, oldest first (loadtest/explain.py).
SELECT kind, run_id, started_at, status, summary
FROM {schema}.runs
WHERE kind IN ('migration', 'maintenance')
  AND started_at > %(since)s
  AND started_at < %(until)s
UNION ALL
SELECT CASE WHEN invalidated > 0 THEN 'cache clear' ELSE 'cache warm' END,
       run_id, started_at, coalesce(alert, 'ok'),
       jsonb_build_object('invalidated', invalidated, 'triggered_by', triggered_by,
                          'hit_rate_before', hit_rate_before, 'hit_rate_after', hit_rate_after)
FROM {schema}.cache_warm_runs
WHERE started_at > %(since)s
  AND started_at < %(until)s
ORDER BY started_at
