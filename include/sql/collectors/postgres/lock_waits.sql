-- Sessions waiting for a lock, with the sessions that block them (pg_blocking_pids).
-- {wait_start} is pg_locks.waitstart (PG14+) when it exists, else NULL; the wait is then timed from
-- the start of the waiting statement.
SELECT
    a.pid,
    a.usename::text AS username,
    a.application_name::text AS application_name,
    a.wait_event::text AS wait_event,
    pg_catalog.pg_blocking_pids(a.pid) AS blocking_pids,
    extract(EPOCH FROM now() - coalesce(w.wait_start, a.query_start))::float8 AS waiting_s,
    left(a.query, 1000) AS query,
    ARRAY(
        SELECT left(b.query, 1000)
        FROM pg_catalog.pg_stat_activity AS b
        WHERE b.pid = ANY (pg_catalog.pg_blocking_pids(a.pid))
        ORDER BY b.pid
    ) AS blocking_queries
FROM pg_catalog.pg_stat_activity AS a
CROSS JOIN LATERAL (
    SELECT min({wait_start})::timestamptz AS wait_start
    FROM pg_catalog.pg_locks AS l
    WHERE l.pid = a.pid AND NOT l.granted
) AS w
WHERE a.wait_event_type = 'Lock'
  AND now() - coalesce(w.wait_start, a.query_start) >= make_interval(secs => %(min_wait_s)s)
ORDER BY waiting_s DESC
