"""What started a DAG run and which moment it belongs to, read the same way for every run type.

Under a real Airflow the task SDK hands tasks its own `DagRunType`, a str-enum without `__str__`:
`str(run_type)` is "DagRunType.ASSET_TRIGGERED" on Python 3.11, never "asset_triggered". And a run
created by `POST /api/v2/dags/{id}/dagRuns` without a logical date has `logical_date=None`; only
`run_after` is set on every run. `dag.test()` shows neither (manual runs with a logical date).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

Trigger = Literal["schedule", "asset", "manual"]


def run_type_of(run_type: Any) -> str:
    """The run type's value ("scheduled", "asset_triggered", "manual", ...), from Airflow's enum,
    the task SDK's enum or a plain string. Compare it with `DagRunType.X.value`."""
    from airflow.utils.types import DagRunType

    return DagRunType(getattr(run_type, "value", run_type)).value


def trigger_of(run_type: Any) -> Trigger:
    """Who planned the run: the schedule, an Asset event, or a person (manual, backfill, an operator)."""
    from airflow.utils.types import DagRunType

    value = run_type_of(run_type)
    if value == DagRunType.SCHEDULED.value:
        return "schedule"
    if value == DagRunType.ASSET_TRIGGERED.value:
        return "asset"
    return "manual"


def run_moment(dag_run: Any) -> datetime:
    """The moment a run belongs to, in UTC: its `run_after` (set on every run: the scheduled time of a
    scheduled run, the trigger time of any other), else its data interval's end, its logical date, now."""
    for name in ("run_after", "data_interval_end", "logical_date"):
        moment = getattr(dag_run, name, None)
        if moment is not None:
            return moment.astimezone(UTC)
    return datetime.now(UTC)
