-- Cache hit rate and slow-query rate: the hourly snapshots averaged per day, and each load test's own.
SELECT json_build_object(
    'snapshots', (
        SELECT json_build_object(
            't', coalesce(json_agg(day ORDER BY day), '[]'::json),
            'cache_hit_rate', coalesce(json_agg(cache ORDER BY day), '[]'::json),
            'slow_query_rate', coalesce(json_agg(slow ORDER BY day), '[]'::json))
        FROM (
            SELECT date_trunc('day', hour) AS day,
                   round(avg(cache_hit_rate)::numeric, 2) AS cache,
                   round(avg(slow_query_rate)::numeric, 2) AS slow
            FROM {schema}.health_snapshots
            WHERE hour >= %(since)s
            GROUP BY 1
        ) AS daily),
    'loadtests', (
        SELECT json_build_object(
            't', coalesce(json_agg(started_at ORDER BY started_at), '[]'::json),
            'cache_hit_rate', coalesce(json_agg(cache_hit_rate ORDER BY started_at), '[]'::json),
            'slow_query_rate', coalesce(json_agg(slow_query_rate ORDER BY started_at), '[]'::json))
        FROM {schema}.loadtest_runs
        WHERE started_at >= %(since)s AND valid))::text
