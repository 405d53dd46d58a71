"""Session fixtures: real PostgreSQL, Redis and SMTP servers (self-started on free loopback ports,
or a user's own through TUTORMAX_DB_URL / TUTORMAX_REDIS_URL / TUTORMAX_SMTP_URL), an Airflow
metadata database, and the Airflow connections that point at them.

Airflow reads AIRFLOW_HOME and friends when first imported, so they are set here, before any test
module imports it.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import psutil
import pytest

from tutormax_ops.core.paths import STATE_DIR
from tutormax_ops.devstack import stack as devstack

SECOND_PG_ENV = "TUTORMAX_TEST_PG2_URL"
# One folder per pytest process, so concurrent sessions never share a data directory.
TEST_STATE = STATE_DIR / "test" / str(os.getpid())


def _remove_folders_of_finished_sessions() -> None:
    for folder in TEST_STATE.parent.glob("*"):
        if folder.name.isdigit() and not psutil.pid_exists(int(folder.name)):
            shutil.rmtree(folder, ignore_errors=True)


_remove_folders_of_finished_sessions()
AIRFLOW_ENV = devstack.airflow_environment(TEST_STATE / "airflow_home")
os.environ.update(AIRFLOW_ENV)


@pytest.fixture(scope="session")
def stack() -> Iterator[devstack.Stack]:
    with devstack.running_stack(TEST_STATE / "stack") as running:
        yield running
    shutil.rmtree(TEST_STATE / "stack", ignore_errors=True)


def _pg_servers() -> list[str]:
    """The primary server, plus a second major version when TUTORMAX_TEST_PG2_URL names one."""
    return ["primary", "second"] if os.environ.get(SECOND_PG_ENV) else ["primary"]


@pytest.fixture(scope="session", params=_pg_servers())
def pg_admin_url(request: pytest.FixtureRequest, stack: devstack.Stack) -> str:
    """A superuser URL (database `postgres`) on a test server: each DB test runs on every server."""
    if request.param == "second":
        return os.environ[SECOND_PG_ENV]
    return stack.admin_url


_database_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def fresh_database(pg_admin_url: str) -> Iterator[Callable[[str], str]]:
    """`fresh_database(hint)` creates a new empty database and returns its URL; all are dropped at the end."""
    created: list[str] = []

    def create(name_hint: str) -> str:
        hint = re.sub(r"[^a-z0-9_]+", "_", name_hint.lower())[:40]
        name = f"t_{os.getpid()}_{next(_database_numbers)}_{hint}"
        created.append(name)
        return devstack.create_database(pg_admin_url, name)

    yield create
    for name in created:
        devstack.drop_database(pg_admin_url, name)


@pytest.fixture(scope="session")
def statements_preloaded(pg_admin_url: str) -> bool:
    """Whether pg_stat_statements is in shared_preload_libraries on the server under test."""
    import psycopg

    with psycopg.connect(pg_admin_url) as conn:
        row = conn.execute("SELECT EXISTS (SELECT 1 FROM pg_settings WHERE name = 'pg_stat_statements.max')")
        return bool(row.fetchone()[0])


@pytest.fixture(scope="session")
def redis_url(stack: devstack.Stack) -> str:
    return stack.endpoints.redis_url


@pytest.fixture(scope="session")
def maildir(stack: devstack.Stack) -> Path:
    if stack.endpoints.maildir is None:
        pytest.skip("emails go to the SMTP server named by TUTORMAX_SMTP_URL; they cannot be read back here")
    return stack.endpoints.maildir


@pytest.fixture(scope="session")
def airflow_db() -> dict[str, str]:
    """A migrated SQLite metadata database in the test AIRFLOW_HOME."""
    result = devstack.airflow_cli("db", "migrate", env=AIRFLOW_ENV)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return AIRFLOW_ENV


@pytest.fixture(scope="session")
def service_db_url(stack: devstack.Stack) -> Iterator[str]:
    """A scratch database with the TutorMax schema and one day of data (never the user's own database)."""
    name = f"tutormax_svc_{os.getpid()}"
    url = devstack.create_database(stack.admin_url, name, extensions=devstack.SERVICE_EXTENSIONS)
    devstack.migrate_service_schema(url)
    devstack.load_service_data(url, days=1, sessions_per_day=3000)
    yield url
    devstack.drop_database(stack.admin_url, name)


@pytest.fixture(scope="session")
def tutormax_api(stack: devstack.Stack, service_db_url: str) -> Iterator[str]:
    """The reference service's base URL (or TUTORMAX_API_URL's, when given)."""
    if stack.endpoints.api_url:
        yield stack.endpoints.api_url
        return
    port = devstack.free_port()
    service = devstack.start_reference_service(
        database_url=service_db_url, redis_url=stack.endpoints.redis_url, port=port, log_dir=stack.log_dir
    )
    yield f"http://{devstack.LOOPBACK}:{port}"
    service.stop()


@pytest.fixture
def airflow_connections(
    stack: devstack.Stack,
    service_db_url: str,
    tutormax_api: str,
    airflow_db: dict,
    monkeypatch: pytest.MonkeyPatch,
) -> devstack.Endpoints:
    """AIRFLOW_CONN_* pointing at the test servers and the service's database, for one test."""
    endpoints = replace(
        stack.endpoints, db_url=service_db_url, results_url=service_db_url, api_url=tutormax_api
    )
    for name, value in endpoints.airflow_env().items():
        monkeypatch.setenv(name, value)
    return endpoints


@pytest.fixture(scope="session")
def run_dag(airflow_db: dict) -> Callable[..., object]:
    """`run_dag(dag_id, run_conf=None)` parses dags/<dag_id>.py and runs it in-process with `dag.test()`."""
    from airflow.dag_processing.dagbag import DagBag

    from tutormax_ops.core.paths import PROJECT_ROOT

    def run(dag_id: str, run_conf: dict | None = None) -> object:
        bag = DagBag(dag_folder=str(PROJECT_ROOT / "dags" / f"{dag_id}.py"))
        assert bag.import_errors == {}
        dag = bag.get_dag(dag_id)
        for task in dag.tasks:  # keep the retry, drop the production back-off
            task.retry_delay = timedelta(seconds=0)
        return dag.test(run_conf=run_conf)

    return run
