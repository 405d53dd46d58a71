UPDATE {schema}.health_alerts SET emailed_at = now()
WHERE hour = %(hour)s AND alert = ANY(%(alerts)s)
