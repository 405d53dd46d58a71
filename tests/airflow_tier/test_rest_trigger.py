"""Each DAG triggered as a script of the operators does it: `POST /api/v2/dags/{id}/dagRuns` with an
empty conf and no logical date (so the run has none), under the real scheduler. Each reaches
success with no task retried."""

from __future__ import annotations

import pytest

from airflow_tier.airflow_api import AirflowApi, Unpaused, dag_ids, wait_for
from tutormax_ops.core.config import load_settings

MIGRATIONS = "tutormax_migrations"
LOAD_TEST = "tutormax_load_test"
# They hold the shared advisory lock while they work, and the load test's guard refuses at once
# while anyone does (by design: no load under a migration or a vacuum). Triggered together, the load
# test was refused whenever its guard ran first (1 run of the tier in 4 on the final main).
LOCK_HOLDERS = ("tutormax_db_maintenance", MIGRATIONS)
# Six run at once on LocalExecutor (4 task slots on 2 cores), then the 30 s smoke load test with its
# analysis, on a machine other suites share. Usually about two minutes.
RUN_TIMEOUT_S = 900


@pytest.fixture(scope="module")
def rest_runs(airflow: AirflowApi, unpaused: Unpaused) -> dict[str, dict]:
    """Every DAG triggered with an empty conf; the load test once the lock holders have finished."""
    runs = {dag_id: airflow.trigger(dag_id) for dag_id in dag_ids() if dag_id != LOAD_TEST}
    for dag_id in LOCK_HOLDERS:
        airflow.wait_finished(dag_id, runs[dag_id]["dag_run_id"], timeout_s=RUN_TIMEOUT_S)
    runs[LOAD_TEST] = airflow.trigger(LOAD_TEST)
    return runs


@pytest.mark.parametrize("dag_id", dag_ids())
def test_a_rest_trigger_with_an_empty_conf_succeeds_without_retries(
    airflow: AirflowApi, rest_runs: dict[str, dict], dag_id: str
) -> None:
    created = rest_runs[dag_id]
    assert created["logical_date"] is None and created["run_type"] == "manual"
    run = airflow.wait_finished(dag_id, created["dag_run_id"], timeout_s=RUN_TIMEOUT_S)
    states = airflow.task_states(dag_id, run["dag_run_id"])
    assert run["state"] == "success", states
    tries = {ti["task_id"]: ti["try_number"] for ti in airflow.task_instances(dag_id, run["dag_run_id"])}
    assert set(tries.values()) <= {0, 1}, tries  # 0: skipped before it ever ran


def test_a_migration_that_applied_nothing_emits_no_event(
    airflow: AirflowApi, rest_runs: dict[str, dict]
) -> None:
    """The tier's service database is at head: the empty-conf upgrade applies nothing, so nothing
    downstream (invalidation, warming, a load test) may follow it."""
    run_id = rest_runs[MIGRATIONS]["dag_run_id"]
    assert airflow.wait_finished(MIGRATIONS, run_id, timeout_s=RUN_TIMEOUT_S)["state"] == "success"
    events = wait_for(
        lambda: airflow.asset_events(source_dag_id=MIGRATIONS, source_run_id=run_id),
        timeout_s=60,
        what="the asset events listed",
        accept=lambda listed: listed is not None,
    )
    assert events == [], [(event["uri"], event["extra"]) for event in events]


@pytest.mark.parametrize(
    ("dag_id", "conf", "field"),
    [
        ("tutormax_load_test", {"users": load_settings().loadtest.max_users + 1}, "users"),
        # Longer than the prefix: refused for where it points, not for its length.
        ("tutormax_cache_clear", {"pattern": "another_service:cache:sessions:*"}, "pattern"),
        ("tutormax_cache_warming", {"targets": ["no_such_target"]}, "targets"),
    ],
)
def test_a_documented_limit_is_refused_before_a_run_exists(
    airflow: AirflowApi, unpaused: Unpaused, dag_id: str, conf: dict, field: str
) -> None:
    before = manual_runs(airflow, dag_id)
    response = airflow.client.post(f"/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf})
    assert response.status_code == 400, (response.status_code, response.text[:500])
    assert field in response.text, response.text[:500]
    assert manual_runs(airflow, dag_id) == before


def manual_runs(airflow: AirflowApi, dag_id: str) -> set[str]:
    """The runs the REST API created (an earlier test's warming may still start Asset-triggered ones)."""
    return {run["dag_run_id"] for run in airflow.runs(dag_id) if run["run_type"] == "manual"}
