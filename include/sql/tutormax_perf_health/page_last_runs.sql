-- The newest run of each kind (%(kinds)s, in that order) in the run registry, with its verdict and its
-- report; a kind never run comes back with a NULL run_id. One index probe per kind (runs_kind_started).
SELECT k.kind, r.dag_id, r.run_id, r.run_type, r.started_at, r.finished_at, r.status, r.headline,
       r.artifacts_uri, r.report_uri
FROM unnest(%(kinds)s::text[]) WITH ORDINALITY AS k(kind, position)
LEFT JOIN LATERAL (
    SELECT dag_id, run_id, run_type, started_at, finished_at, status, headline, artifacts_uri, report_uri
    FROM {schema}.runs
    WHERE kind = k.kind
    ORDER BY started_at DESC
    LIMIT 1
) AS r ON true
ORDER BY k.position
