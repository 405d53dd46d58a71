"""TutorMax Ops: the logic behind the tutormax_* DAGs and the Airflow plugin.

Every module here is imported lazily from task bodies, never at DAG parse time,
except `core.config` and `core.assets`, which do no I/O beyond reading the YAML file.
"""
