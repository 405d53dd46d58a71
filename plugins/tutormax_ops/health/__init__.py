"""Health checks: the connectivity probes the smoke DAG runs."""
