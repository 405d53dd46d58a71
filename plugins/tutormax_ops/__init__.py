"""TutorMax Ops: the logic behind the tutormax_* DAGs and the Airflow plugin.

Every module here is imported lazily from task bodies, never at DAG parse time, except
`core.parse_view` (the few settings a DAG's shape needs, cached as JSON per config change),
`core.assets`, `core.dag_policy`, `core.errors` and `loadtest.operator`, which open no connection.
"""
