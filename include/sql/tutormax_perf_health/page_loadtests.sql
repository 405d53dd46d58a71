-- p95 and throughput per load-test run, one series per endpoint. Runs are numbered in time order and
-- sent once (`t`, `invalid`); each endpoint's series refers to them by number (`i`), which keeps the
-- JSON small. `regressed`: the runs whose findings name the endpoint.
WITH runs AS (
    SELECT dag_id, run_id, started_at, valid, findings,
           (row_number() OVER (ORDER BY started_at, run_id) - 1)::int AS i
    FROM {schema}.loadtest_runs
    WHERE started_at >= %(since)s
), series AS (
    SELECT e.endpoint,
           json_agg(r.i ORDER BY r.i) AS i,
           json_agg(e.p95_ms ORDER BY r.i) AS p95,
           json_agg(e.rps ORDER BY r.i) AS rps
    FROM runs AS r
    JOIN {schema}.loadtest_endpoints AS e USING (dag_id, run_id)
    GROUP BY e.endpoint
), regressed AS (
    SELECT f.value ->> 'scope' AS endpoint, json_agg(DISTINCT r.i) AS i
    FROM runs AS r, jsonb_array_elements(r.findings) AS f
    GROUP BY 1
)
SELECT json_build_object(
    'runs', (SELECT count(*) FROM runs),
    't', (SELECT coalesce(json_agg(started_at ORDER BY i), '[]'::json) FROM runs),
    'invalid', (SELECT coalesce(json_agg(i ORDER BY i), '[]'::json) FROM runs WHERE NOT valid),
    'endpoints', coalesce((
        SELECT json_agg(json_build_object(
            'endpoint', s.endpoint, 'i', s.i, 'p95', s.p95, 'rps', s.rps,
            'regressed', coalesce(g.i, '[]'::json)) ORDER BY s.endpoint)
        FROM series AS s
        LEFT JOIN regressed AS g USING (endpoint)), '[]'::json))::text
