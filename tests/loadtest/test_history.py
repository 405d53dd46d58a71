"""The history rows on a real PostgreSQL: which earlier runs a run is compared with."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from loadtest.factories import SETTINGS, plan
from tutormax_ops.devstack import stack as devstack
from tutormax_ops.loadtest.history import load_history, run_row, store_run_rows
from tutormax_ops.loadtest.model import LIMITED_BY_MACHINE

DAG_ID = "tutormax_load_test"


def test_runs_are_compared_only_with_the_same_profile_users_and_processes(
    fresh_database, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_TUTORMAX_RESULTS", json.dumps(devstack.postgres_connection(fresh_database("history")))
    )
    stress = plan(profile="stress", users=300, step_users=100, step_seconds=30)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    stored = {
        "alike": (stress, None),
        "two workers": (
            plan(profile="stress", users=300, step_users=100, step_seconds=30, processes=2),
            None,
        ),
        "more users": (plan(profile="stress", users=400, step_users=100, step_seconds=30), None),
        "other profile": (plan(users=300), None),
        "machine-limited": (stress, LIMITED_BY_MACHINE),
        "service-limited": (stress, "the service"),
    }
    for index, (run_id, (run_plan, limited_by)) in enumerate(stored.items()):
        row = run_row(run_plan, DAG_ID, run_id, t0 + timedelta(hours=index), tmp_path.as_uri(),
                      valid=True, invalid_reason=None, verdict="pass")  # fmt: skip
        store_run_rows(SETTINGS, {**row, "knee_rps": 100.0 + index, "limited_by": limited_by}, [])
    history = load_history(SETTINGS, stress, DAG_ID, "now")
    # Oldest first; a knee the machine set says nothing of the service and is left out.
    assert [run["run_id"] for run in history] == ["alike", "service-limited"]
    assert [run["knee_rps"] for run in history] == [100.0, 105.0]
