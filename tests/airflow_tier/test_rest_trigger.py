"""Each DAG triggered as a script of the operators does it: `POST /api/v2/dags/{id}/dagRuns` with an
empty conf and no logical date (so the run has none), under the real scheduler. Each reaches
success with no task retried."""

from __future__ import annotations

import pytest
from airflow_api import AirflowApi, Unpaused, dag_ids

# All seven run at once on LocalExecutor (4 task slots on 2 cores): the 30 s smoke load test with
# its analysis, and the vacuum, migration and load test queueing for the shared advisory lock, on a
# machine other suites share. Usually about two minutes.
RUN_TIMEOUT_S = 900


@pytest.fixture(scope="module")
def rest_runs(airflow: AirflowApi, unpaused: Unpaused) -> dict[str, dict]:
    return {dag_id: airflow.trigger(dag_id) for dag_id in dag_ids()}


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
