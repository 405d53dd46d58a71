SELECT endpoint, requests, failures, error_rate
FROM {schema}.loadtest_endpoints
WHERE dag_id = %(dag_id)s AND run_id = %(run_id)s AND failures > 0
ORDER BY failures DESC
LIMIT 10
