"""The tier's Airflow serves every DAG of the package: parsed by its DAG processor, no import error."""

from __future__ import annotations

from airflow_tier.airflow_api import AirflowApi


def test_every_dag_is_served_without_import_errors(airflow: AirflowApi, parsed_dags: list[str]) -> None:
    assert len(parsed_dags) == 7, parsed_dags
    served = {dag["dag_id"]: dag for dag in airflow.get("/dags", limit=100)["dags"]}
    assert sorted(served) == parsed_dags
