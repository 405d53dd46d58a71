-- Bloat and dead tuples per week for the tables most bloated in the newest maintenance run
-- (figures before its vacuum). The newest run comes from the small `runs` table; the rest are index scans.
WITH latest AS (
    SELECT dag_id, run_id
    FROM {schema}.runs
    WHERE kind = 'maintenance'
    ORDER BY started_at DESC
    LIMIT 1
), top_tables AS (
    SELECT m.schema_name, m.table_name
    FROM {schema}.table_metrics AS m
    JOIN latest USING (dag_id, run_id)
    WHERE m.phase = 'before'
    ORDER BY m.bloat_bytes DESC NULLS LAST, m.dead_tuples DESC NULLS LAST
    LIMIT %(top)s
), weekly AS (
    SELECT t.schema_name, t.table_name, date_trunc('week', m.collected_at) AS week,
           max(m.bloat_bytes) AS bloat_bytes, max(m.dead_tuples) AS dead_tuples
    FROM top_tables AS t
    JOIN {schema}.table_metrics AS m USING (schema_name, table_name)
    WHERE m.phase = 'before' AND m.collected_at >= %(since)s
    GROUP BY 1, 2, 3
)
SELECT coalesce(json_agg(json_build_object(
        'table', schema_name || '.' || table_name, 't', t, 'bloat_bytes', bloat, 'dead_tuples', dead)), '[]'::json)::text
FROM (
    SELECT schema_name, table_name,
           json_agg(week ORDER BY week) AS t,
           json_agg(bloat_bytes ORDER BY week) AS bloat,
           json_agg(dead_tuples ORDER BY week) AS dead
    FROM weekly
    GROUP BY 1, 2
) AS per_table
