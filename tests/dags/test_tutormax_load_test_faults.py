"""End to end: tutormax_load_test while a server fails under it. Each failing server is reached through
a `TcpProxy` that is cut once Locust is running, so the servers the other tests share stay up.

- Redis fails mid-run: the reference service degrades to uncached reads, the run is still analysed and
  stored, and the report says which server-side figures could not be collected and why.
- The results database fails while an interrupted run is being recorded: the task fails with the
  interruption (not with the storing error), the raw outputs are kept, and the log says the run could
  not be recorded and where the results database was.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

import psutil
import psycopg
import pytest
from psycopg import sql
from psycopg.rows import dict_row

from support import TcpProxy, task_states
from tutormax_ops.core.config import load_settings
from tutormax_ops.core.storage import ensure_results_schema
from tutormax_ops.devstack import stack as devstack

DAG_ID = "tutormax_load_test"
SCHEMA = load_settings().storage.results_schema


def _target(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 0


@contextlib.contextmanager
def cut_when_locust_runs(proxy: TcpProxy, marker: str, *, after_s: float) -> Iterator[threading.Event]:
    """Cut `proxy` `after_s` after the first process carrying `marker` (Locust's) appears; the event
    yielded tells whether it was cut."""
    cut, finished = threading.Event(), threading.Event()

    def watch() -> None:
        while not finished.is_set():
            if _processes_with(marker):
                finished.wait(after_s)
                proxy.cut()
                cut.set()
                return
            time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield cut
    finally:
        finished.set()
        watcher.join(30)


def _processes_with(marker: str) -> list[int]:
    """Locust's processes carrying `marker` (other children of the DAG's tasks inherit it too)."""
    found = []
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if process.environ().get("TUTORMAX_TEST_RUN_MARKER") == marker and "locust" in process.cmdline():
                found.append(process.pid)
    return found


def _run_row(db_url: str, run_id: str) -> dict | None:
    with psycopg.connect(db_url, row_factory=dict_row) as conn:
        statement = sql.SQL("SELECT * FROM {} WHERE dag_id = %s AND run_id = %s").format(
            sql.Identifier(SCHEMA, "loadtest_runs")
        )
        return conn.execute(statement, (DAG_ID, run_id)).fetchone()


@pytest.fixture
def connect(airflow_connections, service_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """`connect(**endpoint_overrides)` points the connections at the test servers with some replaced;
    artifacts go to this test's folder, and Locust's processes carry a marker to be found by."""
    with psycopg.connect(service_db_url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        ensure_results_schema(conn, SCHEMA)  # so that a run that could not be recorded is looked for
    marker = uuid.uuid4().hex
    monkeypatch.setenv("TUTORMAX_TEST_RUN_MARKER", marker)
    monkeypatch.setenv("TUTORMAX_OPS__STORAGE__ARTIFACTS_BASE", (tmp_path / "artifacts").as_uri())

    def apply(**overrides: str) -> str:
        for name, value in replace(airflow_connections, **overrides).airflow_env().items():
            monkeypatch.setenv(name, value)
        return marker

    return apply


def test_redis_failing_mid_run_is_reported_and_the_run_still_stored(
    stack, service_db_url: str, connect, run_dag, tmp_path: Path, short_runs: int
) -> None:
    """Plumbing (what is stored and reported), no latency judged: a short run."""
    if stack.endpoints.api_url:
        pytest.skip("needs a reference service of its own, started here on the tests' database")
    proxy = TcpProxy(_target(stack.endpoints.redis_url))
    redis_url = proxy.url(stack.endpoints.redis_url)
    port = devstack.free_port()
    service = devstack.start_reference_service(
        database_url=service_db_url, redis_url=redis_url, port=port, log_dir=tmp_path
    )
    try:
        marker = connect(redis_url=redis_url, api_url=f"http://{devstack.LOOPBACK}:{port}")
        # 5 s in: Locust is sending load when Redis goes.
        with cut_when_locust_runs(proxy, marker, after_s=5) as cut:
            dag_run = run_dag(
                DAG_ID, run_conf={"profile": "smoke", "run_time": short_runs, "notify": "never"}
            )
        assert cut.is_set(), "Locust never started: the proxy was not cut"
    finally:
        service.stop()
    states = task_states(dag_run)
    assert states["run"] == ["success"] and states["analyze"] == ["success"], states
    run = _run_row(service_db_url, dag_run.run_id)
    assert run is not None and run["requests"] > 0
    assert run["cache_hit_rate"] is None  # not measured: never a 0 % that fails the target
    report = (Path(run["artifacts_uri"].removeprefix("file://")) / "report.html").read_text()
    assert "Not collected: Redis:" in report
    assert "tutormax_redis" in report or f"127.0.0.1:{proxy.port}" in report  # which server it was


def test_the_results_database_down_while_an_interrupted_run_is_recorded(
    stack, service_db_url: str, connect, run_dag, tmp_path: Path, monkeypatch, capfd
) -> None:
    proxy = TcpProxy(_target(service_db_url))
    results_url = proxy.url(service_db_url)
    marker = connect(results_url=results_url)
    monkeypatch.setenv("TUTORMAX_OPS__LOADTEST__RUN_TASK_TIMEOUT_S", "15")  # read when the DAG is parsed
    monkeypatch.setenv("TUTORMAX_OPS__LOADTEST__KILL_GRACE_S", "5")
    # At once: the database is down well before the timeout, however slowly Locust starts here.
    with cut_when_locust_runs(proxy, marker, after_s=0) as cut:
        dag_run = run_dag(DAG_ID, run_conf={"profile": "smoke", "run_time": 120, "notify": "never"})
    assert cut.is_set(), "Locust never started: the proxy was not cut"
    states = task_states(dag_run)
    assert states["run"] == ["failed"] and states["analyze"] == ["upstream_failed"], states
    assert _processes_with(marker) == []
    assert _run_row(service_db_url, dag_run.run_id) is None  # the results database was down
    output = capfd.readouterr()
    log = output.out + output.err
    assert "could not record the interrupted run: results database:" in log
    assert f"port {proxy.port}" in log  # where the results database was
    assert "AirflowTaskTimeout" in log
    kept = sorted(path.name for path in (tmp_path / "artifacts").rglob("*") if path.is_file())
    assert any(name.endswith(".log") for name in kept), kept  # Locust's own log, kept for the post-mortem
