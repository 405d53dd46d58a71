-- Each alert's state as of the newest hour before this one (a rerun of an hour starts from the same
-- place, so it replaces that hour's rows with the same result).
SELECT DISTINCT ON (alert) alert, state, breaches, clears
FROM {schema}.health_alerts
WHERE hour < %(hour)s
ORDER BY alert, hour DESC
