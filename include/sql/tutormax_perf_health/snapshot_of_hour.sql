SELECT hour, dag_id, run_id, taken_at, health_score, cache_hit_rate, api_p95_ms, error_rate, slow_query_rate,
       query_p95_ms, connections_pct, sources, summary, samples
FROM {schema}.health_snapshots
WHERE hour = %(hour)s
