"""The Airflow plugin class and the FastAPI app it mounts (`/tutormax-ops/api/performance/*`)."""
