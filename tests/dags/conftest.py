"""Fixtures for the dag.test() runs of tests/dags."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def scheduled_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """dag.test() always creates a manual run that started at its logical date; this makes its runs
    scheduled ones that start now, as the scheduler's are (e.g. the catch-up run that unpausing
    creates, hours after its `run_after`), so rules for scheduled runs are tested on the DAG."""
    from airflow.models import dagrun
    from airflow.utils import timezone
    from airflow.utils.types import DagRunType

    create = dagrun.get_or_create_dagrun

    def scheduled(**kwargs: Any) -> Any:
        run = create(**kwargs)
        run.run_type = DagRunType.SCHEDULED
        run.start_date = timezone.utcnow()
        kwargs["session"].commit()
        return run

    monkeypatch.setattr(dagrun, "get_or_create_dagrun", scheduled)
