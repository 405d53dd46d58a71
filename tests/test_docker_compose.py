"""No Docker engine runs here, so docker-compose.yaml is checked statically: it parses, it has the
official Airflow 3 services plus ours, and its settings agree with what the Makefile's runs use."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tutormax_ops.core.paths import PROJECT_ROOT
from tutormax_ops.devstack import stack as devstack

AIRFLOW_SERVICES = {
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
    "airflow-init",
    "postgres",
    "redis",
}
TUTORMAX_SERVICES = {"tutormax-db", "tutormax-redis", "tutormax-service", "smtp-sink"}
CONNECTIONS = ("TUTORMAX_DB", "TUTORMAX_RESULTS", "TUTORMAX_REDIS", "TUTORMAX_API", "SMTP_DEFAULT")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((PROJECT_ROOT / "docker-compose.yaml").read_text())


def _mounts(service: dict) -> dict[str, str]:
    """{container path: host path} of a service's bind mounts."""
    return {
        volume.split(":")[1]: volume.split(":")[0]
        for volume in service.get("volumes", [])
        if volume.startswith(".")
    }


def test_official_services_and_ours_are_defined(compose: dict) -> None:
    assert set(compose["services"]) >= AIRFLOW_SERVICES | TUTORMAX_SERVICES
    assert compose["services"]["airflow-worker"]["command"] == "celery worker"
    assert set(compose["volumes"]) == {"postgres-db-volume", "tutormax-db-volume"}


def test_airflow_settings_agree_with_the_local_runs(compose: dict, tmp_path: Path) -> None:
    local = devstack.airflow_environment(tmp_path)
    for name in ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-worker"):
        service = compose["services"][name]
        env, mounts = service["environment"], _mounts(service)
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == local["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
        # The folders Airflow reads are the repository's own dags/ and plugins/, mounted.
        assert mounts[env["AIRFLOW__CORE__DAGS_FOLDER"]] == "./dags"
        assert mounts[env["AIRFLOW__CORE__PLUGINS_FOLDER"]] == "./plugins"
        assert Path(local["AIRFLOW__CORE__DAGS_FOLDER"]) == PROJECT_ROOT / "dags"
        # PYTHONPATH makes the plugin package and the reference service importable, as locally.
        container_paths = env["PYTHONPATH"].split(":")
        assert [mounts[path] for path in container_paths] == ["./plugins", "./include"]
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"


def test_every_connection_points_at_a_compose_service(compose: dict) -> None:
    env = compose["services"]["airflow-worker"]["environment"]
    for conn_id in CONNECTIONS:
        connection = json.loads(env[f"AIRFLOW_CONN_{conn_id}"])
        assert connection["host"] in compose["services"], conn_id
    local_names = set(
        devstack.Endpoints(
            "postgresql://h/db", "postgresql://h/db", "redis://h", "smtp://h", "http://h"
        ).airflow_env()
    )
    assert {f"AIRFLOW_CONN_{conn_id}" for conn_id in CONNECTIONS} == local_names


def test_tutormax_database_preloads_pg_stat_statements(compose: dict) -> None:
    command = " ".join(compose["services"]["tutormax-db"]["command"])
    assert "shared_preload_libraries=pg_stat_statements" in command


def test_reference_service_and_sink_listen_where_the_connections_say(compose: dict) -> None:
    env = compose["services"]["airflow-worker"]["environment"]
    api = json.loads(env["AIRFLOW_CONN_TUTORMAX_API"])
    assert f"--port {api['port']}" in compose["services"]["tutormax-service"]["command"][1]
    smtp = json.loads(env["AIRFLOW_CONN_SMTP_DEFAULT"])
    sink = compose["services"]["smtp-sink"]["entrypoint"]
    assert sink[sink.index("--port") + 1] == str(smtp["port"])
    allowlist = json.loads(env["TUTORMAX_OPS__LOADTEST__HOST_ALLOWLIST"])
    assert api["host"] in allowlist
