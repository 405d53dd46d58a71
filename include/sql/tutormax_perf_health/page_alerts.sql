-- Alerts firing as of the newest evaluated hour, with their runbooks.
SELECT coalesce(json_agg(json_build_object(
        'alert', alert, 'hour', hour, 'transition', transition, 'value', value, 'threshold', threshold,
        'source', source, 'message', message, 'runbook', runbook) ORDER BY alert), '[]'::json)::text
FROM {schema}.health_alerts
WHERE state = 'firing' AND hour = (SELECT max(hour) FROM {schema}.health_alerts)
