"""Session fixtures: real PostgreSQL, Redis and SMTP servers (self-started on free loopback ports,
or a user's own through TUTORMAX_DB_URL / TUTORMAX_REDIS_URL), an Airflow metadata database, and
the Airflow connections that point at them.

- On a user's PostgreSQL server the session works in scratch databases it creates (the role needs
  CREATEDB) and drops them at the end; it never writes to the database the URL names.
- Emails always go to the session's own SMTP sink, so every email test reads back what was sent;
  TUTORMAX_SMTP_URL (a real server, real recipients) is only handshaken with (tests/core/test_notify).
- SIGTERM and SIGHUP stop the session as Ctrl-C does: fixtures tear down, servers stop. Servers a
  killed session left running are stopped by the next one.
- With CI=true, a skipped test that uses the servers fails, unless it is marked `server_variant`.
- Artifacts go to each test's own temporary folder (TUTORMAX_OPS__STORAGE__ARTIFACTS_BASE); those of
  session fixtures to the session's folder, removed at the end. The session fails if the checkout's
  .tutormax/artifacts gained entries.

Airflow reads AIRFLOW_HOME and friends when first imported, so they are set here, before any test
module imports it.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import re
import shutil
import signal
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import psutil
import pytest

from tutormax_ops.core.paths import STATE_DIR
from tutormax_ops.core.processes import signals_raise
from tutormax_ops.devstack import stack as devstack

SECOND_PG_ENV = "TUTORMAX_TEST_PG2_URL"
# One folder per pytest process, so concurrent sessions never share a data directory.
TEST_STATE = STATE_DIR / "test" / str(os.getpid())


def _remove_folders_of_finished_sessions() -> None:
    for folder in TEST_STATE.parent.glob("*"):
        if folder.name.isdigit() and not psutil.pid_exists(int(folder.name)):
            devstack.stop_leftovers(folder)
            shutil.rmtree(folder, ignore_errors=True)


_remove_folders_of_finished_sessions()
AIRFLOW_ENV = devstack.airflow_environment(TEST_STATE / "airflow_home")
os.environ.update(AIRFLOW_ENV)
# Artifacts of tests that do not redirect their own go to the session's folder, never to the
# checkout's .tutormax/artifacts; the folder goes at the end of the session.
SESSION_ARTIFACTS = TEST_STATE / "artifacts"
os.environ["TUTORMAX_OPS__STORAGE__ARTIFACTS_BASE"] = SESSION_ARTIFACTS.as_uri()


# The folder the settings fall back to when nothing redirects artifacts (a test that unsets the
# variable, or code that ignores it): it must not grow during a session.
CHECKOUT_ARTIFACTS = STATE_DIR / "artifacts"


def _checkout_artifacts() -> set[str]:
    """The run folders (<dag_id>/<run_id>) and other entries in the checkout's artifacts folder."""
    entries: set[str] = set()
    if CHECKOUT_ARTIFACTS.is_dir():
        for top in CHECKOUT_ARTIFACTS.iterdir():
            children = list(top.iterdir()) if top.is_dir() else []
            entries |= {str(path.relative_to(CHECKOUT_ARTIFACTS)) for path in children or [top]}
    return entries


@pytest.fixture(scope="session", autouse=True)
def _stop_on_signals() -> Iterator[None]:
    before = _checkout_artifacts()
    with signals_raise((signal.SIGTERM, signal.SIGHUP)):
        yield
    shutil.rmtree(SESSION_ARTIFACTS, ignore_errors=True)
    gained = sorted(_checkout_artifacts() - before)
    assert not gained, f"tests wrote into the checkout's {CHECKOUT_ARTIFACTS}: {gained}"


@pytest.fixture(autouse=True)
def _own_artifacts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test's artifacts go to its own temporary folder (session fixtures' to the session's)."""
    monkeypatch.setenv("TUTORMAX_OPS__STORAGE__ARTIFACTS_BASE", (tmp_path / "artifacts").as_uri())


def _is_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object | None:
    """`make test` runs `-n 2 --dist loadfile`: a file's tests stay on one worker, so its module
    fixtures (a history of real runs) are built once, and the Airflow tier's files are one unit, so
    they share one `airflow standalone`. (xdist's `loadgroup` marks do nothing under pytest 9: it
    renames node ids through an attribute pytest no longer reads.)"""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class FilesAndTheTier(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return "tests/airflow_tier" if path.startswith("tests/airflow_tier/") else path

    return FilesAndTheTier(config, log)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that runs a DAG is end-to-end (`make check` leaves it out), whatever its file says."""
    for item in items:
        if "run_dag" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.e2e)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> pytest.TestReport:
    report = yield
    if (
        _is_ci()
        and report.skipped
        and "stack" in getattr(item, "fixturenames", ())
        and item.get_closest_marker("server_variant") is None
    ):
        reason = report.longrepr[-1] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"an end-to-end test may not skip with CI=true: {reason}"
    return report


@pytest.fixture(scope="session")
def stack() -> Iterator[devstack.Stack]:
    # The session's own SMTP sink, always: email tests read back what was sent, and no test
    # mails the real recipients of a user's server.
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv(devstack.EXTERNAL_ENV["smtp"], raising=False)
        running = devstack.start_stack(
            TEST_STATE / "stack", database=f"tutormax_test_{os.getpid()}", drop_database_on_stop=True
        )
    try:
        yield running
    finally:
        running.stop()
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
    """Where the session's SMTP sink stores every message (the `stack` fixture always starts one)."""
    assert stack.endpoints.maildir is not None, "the test stack starts its own SMTP sink"
    return stack.endpoints.maildir


def _migrated_template() -> Path:
    """An SQLite metadata database `airflow db migrate` made, kept under the checkout's state folder
    per installed Airflow and providers (a provider may bring migrations of its own): a session
    copies it (a copy is instant, the migration takes 10-30 s)."""
    from importlib.metadata import distributions, version

    installed = sorted(
        f"{dist.metadata['Name']}=={dist.version}"
        for dist in distributions()
        if (dist.metadata["Name"] or "").lower().startswith("apache-airflow")
    )
    key = hashlib.sha256("\n".join(installed).encode()).hexdigest()[:12]
    template = STATE_DIR / "test" / "airflow-db" / f"airflow-{version('apache-airflow')}-{key}.db"
    if not template.is_file():
        scratch = template.parent / f"migrating-{os.getpid()}"
        shutil.rmtree(scratch, ignore_errors=True)
        env = devstack.airflow_environment(scratch)
        result = devstack.airflow_cli("db", "migrate", env=env)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
        (scratch / "airflow.db").replace(template)  # atomic: a concurrent session sees all or nothing
        shutil.rmtree(scratch, ignore_errors=True)
    return template


@pytest.fixture(scope="session")
def airflow_db() -> dict[str, str]:
    """A migrated SQLite metadata database in the test AIRFLOW_HOME (a copy of the version's template)."""
    shutil.copyfile(_migrated_template(), Path(AIRFLOW_ENV["AIRFLOW_HOME"]) / "airflow.db")
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


@pytest.fixture(scope="session")
def served_endpoints(stack: devstack.Stack, service_db_url: str, tutormax_api: str) -> devstack.Endpoints:
    """The test servers, with the service's database as tutormax_db and tutormax_results."""
    return replace(stack.endpoints, db_url=service_db_url, results_url=service_db_url, api_url=tutormax_api)


@pytest.fixture
def airflow_connections(
    served_endpoints: devstack.Endpoints, airflow_db: dict, monkeypatch: pytest.MonkeyPatch
) -> devstack.Endpoints:
    """AIRFLOW_CONN_* pointing at the test servers and the service's database, for one test."""
    for name, value in served_endpoints.airflow_env().items():
        monkeypatch.setenv(name, value)
    return served_endpoints


@pytest.fixture
def short_runs(monkeypatch: pytest.MonkeyPatch) -> int:
    """Lets the load-test form accept a run of the seconds returned (the shipped minimum is 30 s),
    for a test of plumbing that judges no latency: 2 s of spawning, a warm-up of a quarter, and a
    steady state of about 9 s."""
    seconds = 15
    monkeypatch.setenv("TUTORMAX_OPS__LOADTEST__MIN_RUN_TIME_S", str(seconds))
    return seconds


@pytest.fixture(scope="session")
def run_dag(airflow_db: dict) -> Callable[..., object]:
    """`run_dag(dag_id, run_conf=None)` parses dags/<dag_id>.py and runs it in-process with `dag.test()`.

    A task keeps its retry (minus the production back-off), but one that succeeded only on a retry
    fails the test: a failure hidden by the retry is still a failure.
    The file is parsed for every run, not cached: a parse takes 40-60 ms once its imports are loaded
    (dag.test() itself parses the whole dags folder each time), the settings a test changed are read
    at parse time, and an in-process run writes its conf into the tasks' Param objects, which a
    copy of the DAG shares (copy.deepcopy does not copy them)."""
    from airflow.dag_processing.dagbag import DagBag

    from tutormax_ops.core.paths import PROJECT_ROOT

    def run(dag_id: str, run_conf: dict | None = None) -> object:
        bag = DagBag(dag_folder=str(PROJECT_ROOT / "dags" / f"{dag_id}.py"))
        assert bag.import_errors == {}
        dag = bag.get_dag(dag_id)
        for task in dag.tasks:
            task.retry_delay = timedelta(seconds=0)
        dag_run = dag.test(run_conf=run_conf)
        retried = {
            ti.task_id: ti.try_number
            for ti in dag_run.get_task_instances()
            if str(ti.state) == "success" and ti.try_number > 1
        }
        assert not retried, f"{dag_id}: tasks that failed and passed only on a retry (try numbers): {retried}"
        return dag_run

    return run
