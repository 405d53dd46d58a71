"""The task bodies of `tutormax_perf_health`: each DAG task calls one function here, which loads the
settings (with the Airflow Variable) and fails at once on an error no retry can heal."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from tutormax_ops.core.config import load_settings
from tutormax_ops.core.errors import fail_fast
from tutormax_ops.core.runs import run_moment


@fail_fast
def snapshot_step(dag_run: Any) -> dict[str, Any]:
    """The snapshot of the run's hour: `run_after`'s, which every run type has."""
    from tutormax_ops.health.snapshot import take_snapshot

    return take_snapshot(
        dag_id=dag_run.dag_id,
        run_id=dag_run.run_id,
        moment=run_moment(dag_run),
        settings=load_settings(with_variable=True),
    )


@fail_fast
def evaluate_step(taken: Mapping[str, Any]) -> dict[str, Any]:
    from tutormax_ops.health.evaluate import evaluate_alerts

    return evaluate_alerts(datetime.fromisoformat(taken["hour"]), load_settings(with_variable=True))


@fail_fast
def notify_step(evaluated: Mapping[str, Any], *, notify: bool) -> list[str]:
    from tutormax_ops.health.evaluate import email_changes

    hour = datetime.fromisoformat(evaluated["hour"])
    return email_changes(hour, load_settings(with_variable=True), notify=notify)


@fail_fast
def checklist_step(*, force: bool) -> dict[str, Any]:
    from tutormax_ops.health.checklist import refresh_checklist

    return refresh_checklist(load_settings(with_variable=True), force=force)
