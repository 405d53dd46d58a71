"""Your own service, end to end, through config alone: a login-protected FastAPI service written for
this test (tests/byo_jwt_service/: JWT login, UUID primary keys, an Alembic project of three
revisions that creates uuid-ossp and pgcrypto and builds its URL from POSTGRES_* parts). The steps
are the README's "Migrating your own Alembic project" and "Load-testing your own service", in order:
connections (the API's with a login), one config file holding only the team's changes in a folder of
its own, then the migrations, smoke, cache warming, load-test and health DAGs, each of which must
succeed. The service logs every request with its status, so "every request was authenticated" and
"the endpoints are the routes" are read from what it saw."""

from __future__ import annotations

import html
import json
import shutil
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import psycopg
import pytest
import yaml

from support import task_states
from tutormax_ops.core.paths import LOCUST_DIR
from tutormax_ops.devstack import stack as devstack
from tutormax_ops.devstack.passwords import forms, new_password

SERVICE_DIR = Path(__file__).resolve().parents[1] / "byo_jwt_service"
LOGIN_PATH = "/api/v1/login/access-token"
HEALTH_PATH = "/api/v1/utils/health-check/"
USER_EMAIL = "loadtest@example.com"
ITEMS = 120
PARTS_ENV = {
    "host": "POSTGRES_SERVER",
    "port": "POSTGRES_PORT",
    "user": "POSTGRES_USER",
    "password": "POSTGRES_PASSWORD",
    "database": "POSTGRES_DB",
}
# The team's own locustfile: it names no request, and authenticates with what the run gives it.
LOCUSTFILE = LOCUST_DIR / "team_jwt_locustfile.py"


@dataclass(frozen=True)
class JwtService:
    url: str
    db_url: str
    password: str
    request_log: Path

    def requests(self) -> list[str]:
        """Every request the service answered so far, as "<status> METHOD /path"."""
        return self.request_log.read_text().splitlines() if self.request_log.exists() else []


@pytest.fixture(scope="module")
def service(stack, fresh_database, tmp_path_factory) -> Iterator[JwtService]:
    folder = tmp_path_factory.mktemp("jwt_service")
    db_url = fresh_database("jwt_service")
    parts = psycopg.conninfo.conninfo_to_dict(db_url)
    port = devstack.free_port()
    request_log = folder / "requests.log"
    env = devstack.python_env(
        PROJECT_NAME="jwt-items",
        SECRET_KEY=new_password(),
        POSTGRES_SERVER=parts["host"],
        POSTGRES_PORT=str(parts["port"]),
        POSTGRES_USER=parts["user"],
        POSTGRES_PASSWORD=parts["password"],
        POSTGRES_DB=parts["dbname"],
        JWT_REDIS_URL=stack.endpoints.redis_url,
        JWT_REQUEST_LOG=str(request_log),
    )
    argv = [sys.executable, "-m", "uvicorn", "app:app", "--app-dir", str(SERVICE_DIR),
            "--host", devstack.LOOPBACK, "--port", str(port), "--no-access-log"]  # fmt: skip
    server = devstack.spawn("jwt-service", argv, log_path=folder / "jwt-service.log", env=env)
    try:
        devstack.wait_until(
            lambda: devstack.port_accepts(port), timeout_s=60, what="jwt service", log_path=server.log_path
        )
        yield JwtService(f"http://{devstack.LOOPBACK}:{port}", db_url, new_password(), request_log)
    finally:
        server.stop()


def team_config(folder: Path, locustfile: Path, warm_sql: Path) -> Path:
    """The team's one file of changes, in a folder of its own (TUTORMAX_OPS_CONFIG_DIR)."""
    folder.mkdir(parents=True)
    own = {
        "migrations": {
            "project": {
                "ini_path": str(SERVICE_DIR / "alembic.ini"),
                "pythonpath": [str(SERVICE_DIR)],
                "env": {"PROJECT_NAME": "jwt-items", "SECRET_KEY": "not-used-by-migrations"},
                "url_delivery": "env_parts",
                "parts_env": PARTS_ENV,
            }
        },
        "service": {"health_check": {"path": HEALTH_PATH, "status": 200, "json_field": "", "json_value": True}},
        "cache_warm": {
            "targets": [
                {"name": "items", "kind": "sql_ids", "sql_file": str(warm_sql), "sql_params": {"limit": 50},
                 "url_template": "/api/v1/items/{id}"}
            ]
        },
        "loadtest": {
            "default_profile": "jwt",
            "profiles": {
                "jwt": {
                    "users": 8, "spawn_rate": 8, "run_time_s": 30, "locustfile": str(locustfile),
                    "ids": {"sql": "SELECT id::text FROM items ORDER BY id LIMIT %(limit)s", "sql_params": {"limit": 100}},
                    "targets": {"throughput_rps": 0, "p95_api_ms": 2000, "p95_query_ms": 1000,
                                "cache_hit_rate_percent": 0},
                }
            },
        },
    }  # fmt: skip
    (folder / "myservice.yaml").write_text(yaml.safe_dump(own))
    return folder


@pytest.fixture
def configured(service: JwtService, stack, fresh_database, airflow_db, monkeypatch, tmp_path) -> Path:
    """Connections (the API's with the login) and the team's config folder, as the README says."""
    results_url = fresh_database("jwt_results")
    endpoints = replace(stack.endpoints, db_url=service.db_url, results_url=results_url, api_url=service.url)
    for name, value in endpoints.airflow_env().items():
        monkeypatch.setenv(name, value)
    api = {
        **devstack.http_connection(service.url),
        "login": USER_EMAIL,
        "password": service.password,
        "extra": {"auth": {"type": "login", "path": LOGIN_PATH, "format": "form"}},
    }
    monkeypatch.setenv("AIRFLOW_CONN_TUTORMAX_API", json.dumps(api))
    repo = tmp_path / "team_repo"
    repo.mkdir()
    shutil.copy(LOCUSTFILE, repo / "locustfile.py")
    (repo / "warm_items.sql").write_text("SELECT id FROM items ORDER BY updated_at DESC LIMIT %(limit)s\n")
    monkeypatch.setenv(
        "TUTORMAX_OPS_CONFIG_DIR",
        str(team_config(tmp_path / "config", repo / "locustfile.py", repo / "warm_items.sql")),
    )
    monkeypatch.setenv("TUTORMAX_OPS__LOADTEST__HOST_SATURATION_PERCENT", "100")  # as the byo load test
    return results_url


def seed(service: JwtService) -> None:
    """The service's own data, as its seed script would write it (the schema is the migrations')."""
    with psycopg.connect(service.db_url) as conn:
        conn.execute(
            "INSERT INTO users (email, hashed_password) VALUES (%s, crypt(%s, gen_salt('bf', 4)))",
            (USER_EMAIL, service.password),
        )
        conn.execute(
            "INSERT INTO items (owner_id, title) SELECT u.id, 'item ' || n FROM users u,"
            " generate_series(1, %s) AS n",
            (ITEMS,),
        )


def test_migrations_smoke_warming_load_test_and_health_succeed_against_a_login_protected_service(
    service: JwtService, configured: str, run_dag, capfd
) -> None:
    migrated = run_dag("tutormax_migrations")
    assert str(migrated.state) == "success", task_states(migrated)
    with psycopg.connect(service.db_url) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone()[0] == "c3"
        extensions = {row[0] for row in conn.execute("SELECT extname FROM pg_extension")}
        assert {"uuid-ossp", "pgcrypto"} <= extensions
    seed(service)

    seen = len(service.requests())
    smoke = run_dag("tutormax_smoke_connectivity")
    assert str(smoke.state) == "success", task_states(smoke)
    assert service.requests()[seen:] == [f"200 POST {LOGIN_PATH}", f"200 GET {HEALTH_PATH}"]

    seen = len(service.requests())
    warmed = run_dag("tutormax_cache_warming")
    assert str(warmed.state) == "success", task_states(warmed)
    # One process runs every dag.test() here, so the token of the smoke run's login is reused.
    warm_requests = Counter(
        line.rsplit("/", 1)[0] for line in service.requests()[seen:] if LOGIN_PATH not in line
    )
    assert warm_requests == {"200 GET /api/v1/items": 50}

    seen = len(service.requests())
    loaded = run_dag("tutormax_load_test")
    assert str(loaded.state) == "success", task_states(loaded)
    answered = service.requests()[seen:]
    items = [line for line in answered if " /api/v1/items/" in line]
    assert len(items) > 100 and all(line.startswith("200 ") for line in items), Counter(items)
    assert not [line for line in answered if line.startswith(("401 ", "403 "))]  # the optional summary: 404
    with psycopg.connect(configured) as conn:
        run = conn.execute(
            "SELECT verdict, artifacts_uri FROM tutormax_ops.loadtest_runs WHERE run_id = %s",
            (loaded.run_id,),
        ).fetchone()
        endpoints = {
            row[0]
            for row in conn.execute(
                "SELECT endpoint FROM tutormax_ops.loadtest_endpoints WHERE run_id = %s", (loaded.run_id,)
            )
        }
    assert run[0] == "pass" and endpoints == {"GET /api/v1/items/", "GET /api/v1/items/{id}"}
    artifacts = Path(run[1].removeprefix("file://"))
    report = html.unescape((artifacts / "report.html").read_text())
    stored = [path.read_bytes() for path in artifacts.rglob("*") if path.is_file()]
    assert not any(form.encode() in data for data in stored for form in forms(service.password))
    assert report.count("grouped by route") == 1 and 'name="/api/v1/items/{id}"' in report

    health = run_dag("tutormax_perf_health")
    assert str(health.state) == "success", task_states(health)

    logged = capfd.readouterr()
    text = logged.out + logged.err
    assert not any(form in text for form in forms(service.password))
    assert "[error" not in text, [line for line in text.splitlines() if "[error" in line][:5]
