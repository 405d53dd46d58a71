"""The AirflowPlugin. Airflow loads it through `plugins/tutormax_ops_plugin.py`; see that file."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin


class TutorMaxOpsPlugin(AirflowPlugin):
    name = "tutormax_ops"
