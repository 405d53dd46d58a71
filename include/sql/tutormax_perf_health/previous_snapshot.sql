-- The latest snapshot before this hour: its raw samples are the start of this hour's delta window.
SELECT hour, taken_at, samples
FROM {schema}.health_snapshots
WHERE hour < %(hour)s
ORDER BY hour DESC
LIMIT 1
