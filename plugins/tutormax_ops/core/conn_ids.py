"""The Airflow connection ids the package uses: credentials live only in these connections."""

DB_CONN_ID = "tutormax_db"
RESULTS_CONN_ID = "tutormax_results"
REDIS_CONN_ID = "tutormax_redis"
API_CONN_ID = "tutormax_api"
SMTP_CONN_ID = "smtp_default"
