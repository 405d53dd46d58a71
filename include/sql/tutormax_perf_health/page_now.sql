-- The Performance page's header: the newest snapshot (without its raw samples), as one JSON value.
SELECT coalesce((
    SELECT json_build_object(
        'hour', hour, 'taken_at', taken_at, 'health_score', health_score,
        'metrics', sources -> 'metrics', 'sources', sources - 'metrics' - 'service_summary' - 'loadtest',
        'recommendations', summary -> 'recommendations')
    FROM {schema}.health_snapshots
    ORDER BY hour DESC
    LIMIT 1
), 'null'::json)::text
