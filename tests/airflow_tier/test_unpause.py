"""Unpausing every DAG, as an operator does after a deploy, sends no load to the service: the
requests are counted where they arrive (the proxy in front of the service), and no load test run
that unpausing started sent any. The nightly schedules' latest times lie hours in the past (see
conftest), as when a DAG is unpaused in the afternoon."""

from __future__ import annotations

from collections import Counter

from airflow_tier.airflow_api import AirflowApi, Unpaused
from airflow_tier.service_proxy import from_load_test

LOAD_TEST, MAINTENANCE = "tutormax_load_test", "tutormax_db_maintenance"


def test_unpausing_every_dag_sends_no_load_to_the_service(airflow: AirflowApi, unpaused: Unpaused) -> None:
    arrived = Counter(
        f"{seen.method} {seen.path.split('?')[0]} ({seen.user_agent})" for seen in unpaused.requests
    )
    started = {(run["dag_id"], run["run_type"], run["state"]) for run in unpaused.runs}
    load = [seen for seen in unpaused.requests if from_load_test(seen)]
    assert load == [], f"{len(load)} load-test requests; all requests: {dict(arrived)}; runs: {started}"
    for run in unpaused.runs:
        if run["dag_id"] == LOAD_TEST:
            states = airflow.task_states(LOAD_TEST, run["dag_run_id"])
            assert states.get("run") != ["success"], (run["run_type"], states)


def test_a_maintenance_run_that_unpausing_skipped_sends_no_email(
    airflow: AirflowApi, unpaused: Unpaused
) -> None:
    """The weekly run missed 3 h before the unpause is outside its window: it vacuums nothing and,
    since nothing was done, tells nobody."""
    runs = [run for run in unpaused.runs if run["dag_id"] == MAINTENANCE]
    assert [run["run_type"] for run in runs] in ([], ["scheduled"]), runs
    assert [subject for subject in unpaused.emails if MAINTENANCE in subject] == [], unpaused.emails
