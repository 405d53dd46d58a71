"""The chain runs on its own, as the README promises: a migration triggered through the REST API
applies a revision and emits `tutormax_schema_migrated`; that event starts the cache warming, whose
`invalidate` really deletes the stale keys (seeded in Redis first, counted after) before it warms;
its `tutormax_cache_warmed` event starts the smoke load test, whose requests reach the service."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import redis

from airflow_tier.airflow_api import AirflowApi, TierService, Unpaused, wait_for
from airflow_tier.service_proxy import from_load_test
from tutormax_ops.core.paths import SERVICE_DIR
from tutormax_ops.devstack import stack as devstack

MIGRATIONS, WARMING, LOAD_TEST = "tutormax_migrations", "tutormax_cache_warming", "tutormax_load_test"
STALE_KEYS = [f"tutormax:cache:tier-stale:{n}" for n in range(50)]  # under cache_warm.invalidate_patterns
# Each run on a busy 2-core machine: the migration (pg_dump, alembic) and the warming take seconds,
# the load test 30 s of load plus its analysis; the scheduler starts each consumer within a few
# seconds of its event.
RUN_TIMEOUT_S = 600
EVENT_TIMEOUT_S = 120


def downgrade_one_revision(db_url: str) -> None:
    """The service's schema one revision behind head, so the migration has something to apply."""
    alembic = str(Path(sys.executable).with_name("alembic"))
    env = devstack.python_env(TUTORMAX_SERVICE_DATABASE_URL=devstack.sqlalchemy_url(db_url))
    completed = subprocess.run(
        [alembic, "-c", str(SERVICE_DIR / "alembic.ini"), "downgrade", "-1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]


def consumer_run(airflow: AirflowApi, source_dag: str, source_run: str, consumer: str) -> dict:
    """The run of `consumer` that the Asset event of `source_dag`'s run created."""

    def created() -> list[dict]:
        events = airflow.asset_events(source_dag_id=source_dag, source_run_id=source_run) or []
        return [run for event in events for run in event["created_dagruns"] if run["dag_id"] == consumer]

    (run,) = wait_for(created, timeout_s=EVENT_TIMEOUT_S, what=f"{source_dag}'s event started {consumer}")
    return airflow.run(consumer, run["run_id"])


def test_a_migration_invalidates_warms_and_load_tests_on_its_own(
    airflow: AirflowApi, unpaused: Unpaused, tier_service: TierService
) -> None:
    cache = redis.Redis.from_url(tier_service.redis_url)
    cache.mset(dict.fromkeys(STALE_KEYS, "stale"))
    assert cache.exists(*STALE_KEYS) == len(STALE_KEYS)
    downgrade_one_revision(tier_service.db_url)
    try:
        started = time.monotonic()
        migration = airflow.trigger(MIGRATIONS)
        finished = airflow.wait_finished(MIGRATIONS, migration["dag_run_id"], timeout_s=RUN_TIMEOUT_S)
        assert finished["state"] == "success", airflow.task_states(MIGRATIONS, migration["dag_run_id"])

        warming = consumer_run(airflow, MIGRATIONS, migration["dag_run_id"], WARMING)
        assert warming["run_type"] == "asset_triggered"
        warmed = airflow.wait_finished(WARMING, warming["dag_run_id"], timeout_s=RUN_TIMEOUT_S)
        assert warmed["state"] == "success", airflow.task_states(WARMING, warming["dag_run_id"])
        invalidated = airflow.xcom(WARMING, warming["dag_run_id"], "invalidate")
        assert sum(invalidated.values()) >= len(STALE_KEYS), invalidated
        assert cache.exists(*STALE_KEYS) == 0

        load_test = consumer_run(airflow, WARMING, warming["dag_run_id"], LOAD_TEST)
        assert load_test["run_type"] == "asset_triggered"
        tested = airflow.wait_finished(LOAD_TEST, load_test["dag_run_id"], timeout_s=RUN_TIMEOUT_S)
        assert tested["state"] == "success", airflow.task_states(LOAD_TEST, load_test["dag_run_id"])
        load = [seen for seen in tier_service.proxy.since(started) if from_load_test(seen)]
        assert len(load) > 10, len(load)  # 2 users for 30 s: dozens of requests
        assert all(seen.status < 500 for seen in load), [s for s in load if s.status >= 500][:5]
    finally:
        devstack.migrate_service_schema(tier_service.db_url)  # head again, whatever happened
