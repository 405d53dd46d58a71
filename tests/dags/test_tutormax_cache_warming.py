"""End to end: tutormax_cache_warming with dag.test() against the reference service, its Redis and
PostgreSQL; and the post-migration chain migrations → cache warming → smoke load test, each DAG run
with dag.test() and linked by the Asset events they record."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest
import redis
from psycopg import sql

from support import task_states
from tutormax_ops.cache.keys import clear
from tutormax_ops.core.assets import CACHE_WARMED, SCHEMA_MIGRATED
from tutormax_ops.core.config import load_settings
from tutormax_ops.core.db import load_sql

DAG_ID = "tutormax_cache_warming"
SCHEMA = load_settings().storage.results_schema
DASHBOARD_KEY = "tutormax:cache:dashboard:tutor:{}"


@pytest.fixture
def cache(airflow_connections) -> redis.Redis:
    client = redis.Redis.from_url(airflow_connections.redis_url)
    _clear(client)
    yield client
    client.close()


def _clear(client: redis.Redis) -> None:
    clear(client, "tutormax:cache:*", dry_run=False, scan_count=1000, unlink_batch=500)


def active_tutors(db_url: str) -> list[int]:
    target = next(t for t in load_settings().cache_warm.targets if t.name == "tutor_dashboards")
    with psycopg.connect(db_url) as conn:
        return [row[0] for row in conn.execute(load_sql(target.sql_file), target.sql_params)]


def mix_hit_rate(api: str, tutor_ids: list[int]) -> float:
    """Each dashboard read once; the service's own hit/miss counters give the mix's hit rate."""
    with httpx.Client(base_url=api, timeout=30) as client:
        before = client.get("/api/performance/cache/stats").json()
        for tutor_id in tutor_ids:
            client.get(f"/api/tutors/{tutor_id}/dashboard").raise_for_status()
        after = client.get("/api/performance/cache/stats").json()
    hits, misses = after["hits"] - before["hits"], after["misses"] - before["misses"]
    assert hits + misses == len(tutor_ids)
    return 100 * hits / (hits + misses)


def history(db_url: str, run_id: str) -> tuple[dict, dict[str, tuple]]:
    with psycopg.connect(db_url) as conn:
        run = conn.execute(
            sql.SQL(
                "SELECT invalidated, hit_rate_before, hit_rate_after, keys_after, alert FROM {} WHERE run_id = %s"
            ).format(sql.Identifier(SCHEMA, "cache_warm_runs")),
            (run_id,),
        ).fetchone()
        targets = conn.execute(
            sql.SQL("SELECT target, requested, ok, failed, p95_ms FROM {} WHERE run_id = %s").format(
                sql.Identifier(SCHEMA, "cache_warm_targets")
            ),
            (run_id,),
        ).fetchall()
    keys = ("invalidated", "hit_rate_before", "hit_rate_after", "keys_after", "alert")
    return dict(zip(keys, run, strict=True)), {row[0]: row[1:] for row in targets}


def test_warming_fills_the_keys_and_raises_the_hit_rate_of_a_mix(
    cache, airflow_connections, service_db_url, run_dag
) -> None:
    tutor_ids = active_tutors(service_db_url)
    assert len(tutor_ids) >= 50
    mix = tutor_ids[:50]
    cold = mix_hit_rate(airflow_connections.api_url, mix)
    _clear(cache)

    dag_run = run_dag(DAG_ID)
    assert str(dag_run.state) == "success", task_states(dag_run)
    assert all(cache.exists(DASHBOARD_KEY.format(tutor_id)) for tutor_id in tutor_ids)
    assert cache.exists("tutormax:cache:admin:overview")  # from POST /api/performance/cache/warm
    warm = mix_hit_rate(airflow_connections.api_url, mix)
    assert cold == 0 and warm == 100

    run, targets = history(service_db_url, dag_run.run_id)
    assert targets["tutor_dashboards"][:3] == (len(tutor_ids), len(tutor_ids), 0)
    assert targets["tutor_dashboards"][3] > 0
    assert targets["service_warm"][:3] == (1, 1, 0)
    assert run["invalidated"] is None  # a manual run does not invalidate unless asked
    assert run["keys_after"]["tutormax:cache:*"] >= len(tutor_ids)
    below = (
        run["hit_rate_before"] is not None
        and run["hit_rate_before"] < load_settings().alerts.cache_hit_rate_percent
    )
    assert (run["alert"] is not None and "below the alert level" in run["alert"]) == below

    rerun = run_dag(DAG_ID)  # a second run: history rows of its own, nothing duplicated
    assert str(rerun.state) == "success"
    assert len(history(service_db_url, rerun.run_id)[1]) == 2


def test_after_a_warming_run_the_cache_runbook_names_it(cache, service_db_url, run_dag) -> None:
    """The demo's bug: warming wrote only cache_warm_runs, and the hit-rate alert's runbook, reading
    the runs table, said no warming run was recorded. Both now go through the run registry."""
    from tutormax_ops.health.runbooks import runbook

    dag_run = run_dag(DAG_ID)
    assert str(dag_run.state) == "success", task_states(dag_run)
    with psycopg.connect(service_db_url) as conn:
        registered = conn.execute(
            sql.SQL(
                "SELECT kind, status, run_type, headline FROM {} WHERE dag_id = %s AND run_id = %s"
            ).format(sql.Identifier(SCHEMA, "runs")),
            (DAG_ID, dag_run.run_id),
        ).fetchall()
    assert len(registered) == 1, registered
    (kind, status, run_type, headline) = registered[0]
    # "warning" when the hit rate before warming was below the alert level (it depends on earlier tests)
    assert (kind, run_type) == ("cache_warm", "manual") and status in ("success", "warning")
    assert "hit rate" in headline
    steps = {
        item["step"]: item["evidence"] for item in runbook("cache_hit_rate", load_settings(), {"sources": {}})
    }
    evidence = steps["Warm the cache for popular data: the last warming run"]
    assert dag_run.run_id in evidence and f": {status} at" in evidence, evidence
    assert "no cache warm run is recorded" not in evidence


def test_a_host_off_the_allowlist_is_refused_before_any_request(cache, run_dag, monkeypatch) -> None:
    monkeypatch.setenv("TUTORMAX_OPS__LOADTEST__HOST_ALLOWLIST", '["api.internal"]')
    dag_run = run_dag(DAG_ID)
    assert task_states(dag_run)["warm"] == ["failed"]
    assert cache.dbsize() == 0 or not any(cache.scan_iter(match="tutormax:cache:*", count=1000))


def asset_events(name: str) -> list:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.execute(
            select(AssetEvent.timestamp, AssetEvent.source_dag_id, AssetEvent.source_run_id)
            .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
            .where(AssetModel.name == name)
            .order_by(AssetEvent.timestamp)
        ).all()
    return [tuple(row) for row in rows]


def _dag(dag_id: str):
    from airflow.dag_processing.dagbag import DagBag

    from tutormax_ops.core.paths import PROJECT_ROOT

    return DagBag(dag_folder=str(PROJECT_ROOT / "dags" / f"{dag_id}.py")).dags[dag_id]


def test_schedules_chain_migration_warming_and_load_test() -> None:
    warming, load_test = _dag(DAG_ID), _dag("tutormax_load_test")
    assert list(warming.timetable.asset_condition.objects) == [SCHEMA_MIGRATED]
    assert list(load_test.timetable.asset_condition.objects) == [CACHE_WARMED]
    assert _dag("tutormax_migrations").get_task("announce").outlets == [SCHEMA_MIGRATED]
    assert warming.get_task("record").outlets == [CACHE_WARMED]


def test_a_migration_leads_to_clear_warm_then_the_smoke_load_test(
    cache, airflow_connections, run_dag, fresh_database, monkeypatch
) -> None:
    from tutormax_ops.devstack import stack as devstack

    cache.set("tutormax:cache:dashboard:tutor:stale", b"old schema", ex=600)
    # A migration that changes a schema (a migration that applies nothing emits no event): the
    # reference project onto a new database, then the service's database again for the rest.
    with monkeypatch.context() as patch:
        unmigrated = fresh_database("chain_migration")
        with psycopg.connect(unmigrated, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        patch.setenv("AIRFLOW_CONN_TUTORMAX_DB", json.dumps(devstack.postgres_connection(unmigrated)))
        migration = run_dag("tutormax_migrations")
    assert str(migration.state) == "success", task_states(migration)
    migrated = [e for e in asset_events(SCHEMA_MIGRATED.name) if e[2] == migration.run_id]
    assert len(migrated) == 1, (asset_events(SCHEMA_MIGRATED.name), migration.run_id)

    # The scheduler would now create an asset-triggered run, which invalidates and marks its event
    # planned by default; dag.test() makes a manual run, so the params say what the trigger would.
    warming = run_dag(DAG_ID, run_conf={"invalidate": True, "load_test": True})
    assert str(warming.state) == "success", task_states(warming)
    instances = {ti.task_id: ti for ti in warming.get_task_instances()}
    assert instances["invalidate"].end_date <= instances["warm"].start_date
    assert not cache.exists("tutormax:cache:dashboard:tutor:stale")
    warmed = [e for e in asset_events(CACHE_WARMED.name) if e[2] == warming.run_id]
    assert len(warmed) == 1
    assert migrated[0][0] < instances["invalidate"].start_date
    assert warmed[0][0] >= instances["warm"].end_date

    load = run_dag("tutormax_load_test", run_conf={"profile": "smoke", "run_time": 30, "notify": "never"})
    states = task_states(load)
    assert (states["guard"], states["run"]) == (["success"], ["success"]), states
    load_instances = {ti.task_id: ti for ti in load.get_task_instances()}
    assert warmed[0][0] < load_instances["run"].start_date


def test_an_asset_triggered_run_invalidates_and_stores_the_run_type_value(
    cache, airflow_connections, service_db_url
) -> None:
    """Under a real Airflow a task gets the task SDK's DagRunType, whose str() is
    "DagRunType.ASSET_TRIGGERED": the tasks are called here as the task runner calls them."""
    from types import SimpleNamespace

    from airflow.sdk.api.datamodels._generated import DagRunType

    cache.set("tutormax:cache:dashboard:tutor:stale", b"old schema", ex=600)
    dag = _dag(DAG_ID)
    dag_run = SimpleNamespace(
        run_type=DagRunType.ASSET_TRIGGERED, start_date=datetime.now(UTC), run_id="asset_run_type_test"
    )
    removed = dag.get_task("invalidate").python_callable(params={}, dag_run=dag_run)
    assert removed["tutormax:cache:*"] >= 1
    assert not cache.exists("tutormax:cache:dashboard:tutor:stale")

    event = SimpleNamespace(extra={})
    record = dag.get_task("record").python_callable
    record(
        {},
        removed,
        [],
        run_id=dag_run.run_id,
        dag_run=dag_run,
        params={},
        outlet_events={CACHE_WARMED: event},
    )
    assert event.extra == {"planned": True, "trigger": "asset", "run_id": dag_run.run_id}
    with psycopg.connect(service_db_url) as conn:
        triggered_by = conn.execute(
            sql.SQL("SELECT triggered_by FROM {} WHERE run_id = %s").format(
                sql.Identifier(SCHEMA, "cache_warm_runs")
            ),
            (dag_run.run_id,),
        ).fetchone()[0]
    assert triggered_by == "asset_triggered"


def _run(run_type, *, run_after: datetime, run_id: str):
    from types import SimpleNamespace

    return SimpleNamespace(
        run_type=run_type, run_after=run_after, start_date=datetime.now(UTC), run_id=run_id
    )


def test_a_scheduled_warm_run_after_its_window_skips_everything(cache, airflow_connections) -> None:
    """The catch-up run of an unpaused DAG: the 01:30 run started in the afternoon."""
    from airflow.sdk.api.datamodels._generated import DagRunType
    from airflow.sdk.exceptions import AirflowSkipException

    snapshot = _dag(DAG_ID).get_task("snapshot").python_callable
    late = _run(DagRunType.SCHEDULED, run_after=datetime.now(UTC) - timedelta(hours=13), run_id="late")
    with pytest.raises(AirflowSkipException, match="after its window"):
        snapshot(dag_run=late)
    on_time = _run(DagRunType.SCHEDULED, run_after=datetime.now(UTC) - timedelta(minutes=1), run_id="on_time")
    assert "hit_rate_percent" in snapshot(dag_run=on_time)


def test_a_manual_warm_run_marks_its_event_unplanned_unless_asked(cache, airflow_connections) -> None:
    from types import SimpleNamespace

    from airflow.sdk.api.datamodels._generated import DagRunType

    record = _dag(DAG_ID).get_task("record").python_callable
    manual = _run(DagRunType.MANUAL, run_after=datetime.now(UTC), run_id="manual_warm_planned_test")
    marks = []
    for params in ({}, {"load_test": True}, {"load_test": False}):
        event = SimpleNamespace(extra={})
        record(
            {},
            {},
            [],
            run_id=manual.run_id,
            dag_run=manual,
            params=params,
            outlet_events={CACHE_WARMED: event},
        )
        marks.append(event.extra["planned"])
    assert marks == [False, True, False]


def test_an_asset_triggered_load_test_after_an_unplanned_warm_run_sends_no_load(
    airflow_connections, service_db_url
) -> None:
    from dataclasses import asdict
    from types import SimpleNamespace

    from airflow.sdk.api.datamodels._generated import DagRunType
    from airflow.sdk.exceptions import AirflowSkipException

    from tutormax_ops.loadtest.model import RunPlan
    from tutormax_ops.loadtest.window import skip_outside_window

    plan = asdict(RunPlan("smoke", airflow_connections.api_url, 20, 10.0, 60, 0, "never", "asset"))

    def context(run_id: str, planned: bool | None) -> dict:
        extra = {} if planned is None else {"planned": planned}
        warmed = SimpleNamespace(extra=extra, source_dag_id=DAG_ID, source_run_id=f"warm_of_{run_id}")
        return {
            "dag_run": _run(DagRunType.ASSET_TRIGGERED, run_after=datetime.now(UTC), run_id=run_id),
            "ti": SimpleNamespace(dag_id="tutormax_load_test", run_id=run_id),
            "triggering_asset_events": {CACHE_WARMED: [warmed]},
        }

    for run_id, planned in (("asset_after_manual_warm", False), ("asset_after_unmarked_event", None)):
        with pytest.raises(AirflowSkipException, match="no triggering Asset event was a planned run"):
            skip_outside_window(plan, context(run_id, planned))
        with psycopg.connect(service_db_url) as conn:
            verdict, reason = conn.execute(
                sql.SQL("SELECT verdict, invalid_reason FROM {} WHERE run_id = %s").format(
                    sql.Identifier(SCHEMA, "loadtest_runs")
                ),
                (run_id,),
            ).fetchone()
        assert verdict == "skipped" and f"warm_of_{run_id}" in reason
    assert skip_outside_window(plan, context("asset_after_planned_warm", True)).startswith("window:")
