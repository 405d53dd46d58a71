"""Run types and run moments as a real Airflow hands them to tasks (task SDK enum, REST runs)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from airflow.sdk.api.datamodels._generated import DagRunType as SdkDagRunType
from airflow.utils.types import DagRunType

from tutormax_ops.core.runs import run_moment, run_type_of, trigger_of


@pytest.mark.parametrize(
    "run_type", [SdkDagRunType.ASSET_TRIGGERED, DagRunType.ASSET_TRIGGERED, "asset_triggered"]
)
def test_every_spelling_of_a_run_type_gives_its_value(run_type) -> None:
    assert run_type_of(run_type) == "asset_triggered"
    assert trigger_of(run_type) == "asset"


def test_triggers() -> None:
    assert trigger_of(SdkDagRunType.SCHEDULED) == "schedule"
    assert [trigger_of(t) for t in ("manual", "backfill", "operator_triggered")] == ["manual"] * 3


def test_a_rest_triggered_run_without_logical_date_has_a_moment() -> None:
    run_after = datetime(2026, 3, 1, 14, 5, tzinfo=UTC)
    assert run_moment(SimpleNamespace(logical_date=None, run_after=run_after)) == run_after
    interval_end = datetime(2026, 3, 1, 13, tzinfo=UTC)
    assert run_moment(SimpleNamespace(run_after=None, data_interval_end=interval_end)) == interval_end
    now = datetime.now(UTC)
    assert now <= run_moment(SimpleNamespace(logical_date=None)) < now + timedelta(seconds=5)
