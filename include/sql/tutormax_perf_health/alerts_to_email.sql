SELECT hour, alert, state, transition, value, threshold, source, message, runbook
FROM {schema}.health_alerts
WHERE hour = %(hour)s AND transition IN ('raise', 'resolve') AND emailed_at IS NULL
ORDER BY alert
