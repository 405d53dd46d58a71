"""No Docker engine runs here, so docker-compose.yaml and the Dockerfile are checked statically: the
file validates against the Compose specification, nothing is pip-installed when a container starts,
every container that runs our code uses the one built image and a command of this repository that
`make demo` / `make test` also run, the seed step runs before what needs it, and each container gets
only the secrets it needs. The seed step itself runs for real in tests/tutormax_service/test_seed.py."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tutormax_ops.core.paths import PROJECT_ROOT
from tutormax_ops.devstack import stack as devstack
from tutormax_service import seed

AIRFLOW_SERVICES = {
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
    "airflow-init",
}
DATASTORES = {"postgres", "redis", "tutormax-db", "tutormax-redis"}  # stock images, none of our code
TUTORMAX_CONTAINERS = {"tutormax-init", "tutormax-service", "smtp-sink"}
LOCUST_WORKER = "locust-worker"  # scaled with `docker compose up --scale locust-worker=N`
CONNECTIONS = ("TUTORMAX_DB", "TUTORMAX_RESULTS", "TUTORMAX_REDIS", "TUTORMAX_API", "SMTP_DEFAULT")
# What each TutorMax container may see, and nothing else (no Airflow settings, no connections).
TUTORMAX_ENV = {
    "tutormax-init": {"CONNECTION_CHECK_MAX_COUNT", "TUTORMAX_SERVICE_DATABASE_URL"},
    "tutormax-service": {
        "CONNECTION_CHECK_MAX_COUNT",
        "TUTORMAX_SERVICE_DATABASE_URL",
        "TUTORMAX_SERVICE_REDIS_URL",
    },
    "smtp-sink": {"CONNECTION_CHECK_MAX_COUNT"},
    LOCUST_WORKER: {"CONNECTION_CHECK_MAX_COUNT", "PYTHONPATH"},
}
# The Airflow commands of the official file: the image's /entrypoint runs `airflow <command>`.
AIRFLOW_COMMANDS = {
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-triggerer": "triggerer",
    "airflow-worker": "celery worker",
}
DOCKERFILE = PROJECT_ROOT / "Dockerfile"


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((PROJECT_ROOT / "docker-compose.yaml").read_text())


@pytest.fixture(scope="module")
def services(compose: dict) -> dict[str, dict]:
    return compose["services"]


def _mounts(service: dict) -> dict[str, str]:
    """{container path: host path} of a service's bind mounts."""
    return {
        volume.split(":")[1]: volume.split(":")[0]
        for volume in service.get("volumes", [])
        if volume.startswith(".")
    }


def _argv(service: dict) -> list[str]:
    """What the container runs: entrypoint then command, as a list of words."""
    words: list[str] = []
    for key in ("entrypoint", "command"):
        value = service.get(key) or []
        words += value.split() if isinstance(value, str) else value
    return words


def _python_module(argv: list[str]) -> str:
    assert argv[:2] == ["python", "-m"], argv
    return argv[2]


def _dockerfile_arg(name: str) -> str:
    match = re.search(rf'^ARG {name}="?([^"\n]*)"?$', DOCKERFILE.read_text(), re.MULTILINE)
    assert match, f"ARG {name} missing from the Dockerfile"
    return match.group(1)


def _lock() -> dict[str, str]:
    lines = (PROJECT_ROOT / "requirements.lock").read_text().split()
    return dict(line.lower().split("==") for line in lines)


def test_official_services_and_ours_are_defined(compose: dict, services: dict) -> None:
    assert set(services) == AIRFLOW_SERVICES | DATASTORES | TUTORMAX_CONTAINERS | {LOCUST_WORKER}
    for name, command in AIRFLOW_COMMANDS.items():
        assert services[name]["command"] == command
    assert set(compose["volumes"]) == {"postgres-db-volume", "tutormax-db-volume"}


def test_compose_file_validates_against_the_compose_specification(tmp_path: Path) -> None:
    def check(path: Path) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec"]
        return subprocess.run([*argv, str(path)], capture_output=True, text=True, timeout=120, check=False)

    completed = check(PROJECT_ROOT / "docker-compose.yaml")
    assert completed.returncode == 0, completed.stdout + completed.stderr
    # The same check rejects a condition Compose does not know, so it is not vacuous.
    broken = tmp_path / "docker-compose.yaml"
    text = (PROJECT_ROOT / "docker-compose.yaml").read_text()
    broken.write_text(text.replace("service_completed_successfully", "service_completed", 1))
    assert check(broken).returncode == 1


def test_no_container_installs_packages_when_it_starts(services: dict) -> None:
    for name, service in services.items():
        # The image's /entrypoint pip-installs a non-empty _PIP_ADDITIONAL_REQUIREMENTS (and exits 1
        # for root, as airflow-init runs).
        assert not service.get("environment", {}).get("_PIP_ADDITIONAL_REQUIREMENTS"), name
        assert "pip" not in " ".join(_argv(service)).split(), name
    assert "_PIP_ADDITIONAL_REQUIREMENTS" not in (PROJECT_ROOT / "docker-compose.yaml").read_text()


def test_every_service_running_our_code_uses_the_built_image(services: dict) -> None:
    built = {name for name, service in services.items() if "build" in service}
    assert built == set(services) - DATASTORES
    assert {services[name]["build"] for name in built} == {"."}
    assert len({services[name]["image"] for name in built}) == 1
    assert (PROJECT_ROOT / services["airflow-worker"]["build"] / "Dockerfile").is_file()
    for name in DATASTORES:
        assert services[name]["image"].split(":")[0] in {"postgres", "redis"}, name


def test_dockerfile_extends_the_pinned_airflow_image_with_the_lock() -> None:
    text, lock = DOCKERFILE.read_text(), _lock()
    assert re.search(r"^FROM \$\{AIRFLOW_IMAGE\}$", text, re.MULTILINE)
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert _dockerfile_arg("AIRFLOW_IMAGE") == f"apache/airflow:{lock['apache-airflow']}-python{version}"
    assert re.search(r'pip install --no-cache-dir "apache-airflow==\$\{AIRFLOW_VERSION\}" -r ', text)
    # The lines the build leaves out of the lock: dev and test tools only, each still in the lock.
    excluded = set(_dockerfile_arg("LOCK_EXCLUDE").split())
    assert excluded <= set(lock)
    runtime = {"apache-airflow", "locust", "aiosmtpd", "uvicorn", "fastapi", "alembic", "psycopg", "redis"}
    assert not excluded & runtime
    assert "COPY --chown=airflow:0 requirements.lock" in text


def test_image_holds_the_code_at_the_paths_airflow_reads(services: dict, tmp_path: Path) -> None:
    text = DOCKERFILE.read_text()
    copied = dict(re.findall(r"^COPY --chown=airflow:0 (\w+)/ (\S+)/$", text, re.MULTILINE))
    assert copied == {
        "dags": "/opt/airflow/dags",
        "plugins": "/opt/airflow/plugins",
        "include": "/opt/airflow/include",
    }
    pythonpath = re.search(r"^ENV PYTHONPATH=(\S+)$", text, re.MULTILINE).group(1).split(":")
    assert pythonpath == [copied["plugins"], copied["include"]]
    # .dockerignore keeps the build context to what is copied (no .venv, .git or .tutormax).
    lines = (PROJECT_ROOT / ".dockerignore").read_text().splitlines()
    ignore = [line for line in lines if line and not line.startswith("#")]
    assert ignore[0] == "*"
    assert {f"!{source}/" for source in copied} | {"!requirements.lock"} <= set(ignore)
    local = devstack.airflow_environment(tmp_path)
    assert local["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
    assert Path(local["AIRFLOW__CORE__DAGS_FOLDER"]) == PROJECT_ROOT / "dags"
    for name in ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-worker"):
        service = services[name]
        env, mounts = service["environment"], _mounts(service)
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == local["AIRFLOW__CORE__LOAD_EXAMPLES"]
        # Airflow reads the image's folders; the working tree is mounted over them, as locally.
        assert env["AIRFLOW__CORE__DAGS_FOLDER"] == copied["dags"]
        assert env["AIRFLOW__CORE__PLUGINS_FOLDER"] == copied["plugins"]
        assert {mounts[path] for path in copied.values()} == {f"./{source}" for source in copied}
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"


def test_tutormax_containers_run_the_commands_make_demo_and_make_test_run(services: dict) -> None:
    devstack_source = Path(devstack.__file__).read_text()
    for name in TUTORMAX_CONTAINERS:
        service = services[name]
        # Through the image's /entrypoint, which execs `python …` after skipping its Airflow DB wait.
        assert "entrypoint" not in service, name
        assert service["environment"]["CONNECTION_CHECK_MAX_COUNT"] == "0", name
        argv = _argv(service)
        module = _python_module(argv)
        relative = Path(*module.split("."))
        sources = [PROJECT_ROOT / root / relative.with_suffix(".py") for root in ("plugins", "include")]
        assert any(path.is_file() for path in sources), f"{name}: no module {module} in plugins/ or include/"
        # The local stack (make demo, make test) starts the same module.
        assert f'"{module}"' in devstack_source, f"{name}: devstack never runs {module}"
        # Every option the container passes is one the module accepts.
        completed = subprocess.run(
            [sys.executable, "-m", module, "--help"],
            env=devstack.python_env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert completed.returncode == 0, completed.stderr[-2000:]
        for option in (word for word in argv[3:] if word.startswith("--")):
            assert option in completed.stdout, f"{name}: {module} has no option {option}"


def test_seed_step_runs_once_before_what_needs_it(services: dict) -> None:
    init = services["tutormax-init"]
    assert _python_module(_argv(init)) == seed.__name__
    # The seed module creates these (tests/tutormax_service/test_seed.py runs it against PostgreSQL).
    assert set(seed.EXTENSIONS) == {"pg_stat_statements", "pgstattuple"}
    assert init.get("restart", "no") == "no"
    assert init["depends_on"] == {"tutormax-db": {"condition": "service_healthy"}}
    for name in ("tutormax-service", "airflow-worker"):
        assert services[name]["depends_on"]["tutormax-init"] == {
            "condition": "service_completed_successfully"
        }, name
    for name in AIRFLOW_SERVICES - {"airflow-init"}:
        assert services[name]["depends_on"]["airflow-init"] == {
            "condition": "service_completed_successfully"
        }, name


def test_tutormax_database_preloads_pg_stat_statements(services: dict) -> None:
    command = " ".join(services["tutormax-db"]["command"])
    assert "shared_preload_libraries=pg_stat_statements" in command


def test_each_container_gets_only_the_variables_it_needs(services: dict) -> None:
    for name, allowed in TUTORMAX_ENV.items():
        assert set(services[name]["environment"]) == allowed, name
    conn_vars = {f"AIRFLOW_CONN_{conn_id}" for conn_id in CONNECTIONS}
    for name, service in services.items():
        env = set(service.get("environment", {}))
        holders = {
            "airflow-worker": conn_vars,
            # The plugin's API reads the service database and its cache, nothing else.
            "airflow-apiserver": {"AIRFLOW_CONN_TUTORMAX_DB", "AIRFLOW_CONN_TUTORMAX_REDIS"},
        }
        assert {var for var in env if var.startswith("AIRFLOW_CONN_")} == holders.get(name, set()), name
        if name not in AIRFLOW_SERVICES:
            assert not {var for var in env if var.startswith("AIRFLOW")}, name
        else:
            assert "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN" in env, name


def test_every_connection_points_at_a_compose_service(services: dict) -> None:
    env = services["airflow-worker"]["environment"]
    for conn_id in CONNECTIONS:
        connection = json.loads(env[f"AIRFLOW_CONN_{conn_id}"])
        assert connection["host"] in services, conn_id
    local_names = set(
        devstack.Endpoints(
            "postgresql://h/db", "postgresql://h/db", "redis://h", "smtp://h", "http://h"
        ).airflow_env()
    )
    assert {f"AIRFLOW_CONN_{conn_id}" for conn_id in CONNECTIONS} == local_names
    # The seed and the service use the database and Redis the connections name.
    db = json.loads(env["AIRFLOW_CONN_TUTORMAX_DB"])
    url = f"postgresql+psycopg://{db['login']}:{db['password']}@{db['host']}:{db['port']}/{db['schema']}"
    for name in ("tutormax-init", "tutormax-service"):
        assert services[name]["environment"]["TUTORMAX_SERVICE_DATABASE_URL"] == url, name
    redis = json.loads(env["AIRFLOW_CONN_TUTORMAX_REDIS"])
    redis_url = f"redis://{redis['host']}:{redis['port']}/{redis['extra']['db']}"
    assert services["tutormax-service"]["environment"]["TUTORMAX_SERVICE_REDIS_URL"] == redis_url


def test_reference_service_and_sink_listen_where_the_connections_say(services: dict) -> None:
    env = services["airflow-worker"]["environment"]
    api = json.loads(env["AIRFLOW_CONN_TUTORMAX_API"])
    service = _argv(services["tutormax-service"])
    assert service[service.index("--port") + 1] == str(api["port"])
    smtp = json.loads(env["AIRFLOW_CONN_SMTP_DEFAULT"])
    sink = _argv(services["smtp-sink"])
    assert sink[sink.index("--port") + 1] == str(smtp["port"])
    allowlist = json.loads(env["TUTORMAX_OPS__LOADTEST__HOST_ALLOWLIST"])
    assert api["host"] in allowlist
    # The sink writes where airflow-init created a folder for it, on the artifacts mount.
    maildir = sink[sink.index("--maildir") + 1]
    assert maildir.startswith(next(iter(_mounts(services["smtp-sink"]))) + "/")
    assert maildir in " ".join(services["airflow-init"]["command"])


def test_locust_workers_join_the_load_tests_master_with_the_images_locustfiles(services: dict) -> None:
    from tutormax_ops.core.paths import LOCUST_DIR
    from tutormax_ops.loadtest.runner import RECORDER

    worker = services[LOCUST_WORKER]
    argv = _argv(worker)
    assert _python_module(argv) == "locust" and "--worker" in argv and "--headless" not in argv
    # The master is the `run` task, in airflow-worker: the workers dial the port it binds, on all
    # interfaces, and it waits for as many as compose was told to start.
    settings = services["airflow-worker"]["environment"]
    assert argv[argv.index("--master-host") + 1] == "airflow-worker"
    assert argv[argv.index("--master-port") + 1] == settings["TUTORMAX_OPS__LOADTEST__MASTER_PORT"]
    assert settings["TUTORMAX_OPS__LOADTEST__MASTER_BIND_HOST"] == "0.0.0.0"
    assert settings["TUTORMAX_OPS__LOADTEST__REMOTE_WORKERS"] == "${TUTORMAX_LOCUST_WORKERS:-0}"
    # The files the image holds (include/ at /opt/airflow/include), the ones the master loads for the
    # default profile: its roll call refuses a worker whose files differ.
    files = argv[argv.index("-f") + 1].split(",")
    image_include = Path("/opt/airflow/include")
    assert [PROJECT_ROOT / "include" / Path(path).relative_to(image_include) for path in files] == [
        LOCUST_DIR / "tutormax_locustfile.py",
        RECORDER,
    ]
    assert worker["environment"]["PYTHONPATH"] == str(image_include / "locust")
    # None unless asked for, so `--scale locust-worker=N` decides; never a secret.
    assert worker["deploy"]["replicas"] == 0
    completed = subprocess.run(
        [sys.executable, "-m", "locust", "--help"], capture_output=True, text=True, timeout=120, check=False
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    for option in (word for word in argv[3:] if word.startswith("--")):
        assert option in completed.stdout, f"locust has no option {option}"
