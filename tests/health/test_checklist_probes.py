"""The checklist items decided by checklist_probes, against real servers: Redis for the caching
environment, services served here for the rate-limit burst (one that limits, one that does not)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from tutormax_ops.cache.keys import clear
from tutormax_ops.core.config import SettingsError, load_settings
from tutormax_ops.health.checklist import ITEMS
from tutormax_ops.health.checklist_probes import check_cache_environment, check_rate_limit, check_rollback

PATTERN = "tutormax:checklist_probe:*"
LIMIT_AFTER = 7  # the limiting service answers 429 from this request on


def test_the_checklist_has_the_seeds_twelve_items() -> None:
    assert len(ITEMS) == 12 and len({item for item, _, _ in ITEMS}) == 12


@pytest.fixture
def probe_keys(airflow_connections) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(airflow_connections.redis_url)
    clear(client, PATTERN, dry_run=False, scan_count=1000, unlink_batch=100)
    yield client
    clear(client, PATTERN, dry_run=False, scan_count=1000, unlink_batch=100)
    client.close()


def _cache_verdict():
    return check_cache_environment(load_settings(collectors={"redis_key_patterns": [PATTERN]}))


def test_an_empty_cache_cannot_tell_and_names_what_fills_it(probe_keys: redis.Redis) -> None:
    verdict = _cache_verdict()
    assert verdict.status == "cannot tell" and "tutormax_cache_warming" in verdict.evidence


def test_keys_with_a_ttl_pass_and_a_key_that_never_expires_fails(probe_keys: redis.Redis) -> None:
    for n in range(3):
        probe_keys.set(f"tutormax:checklist_probe:{n}", "x", ex=300 + n)
    verdict = _cache_verdict()
    if probe_keys.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction" and int(
        probe_keys.config_get("maxmemory")["maxmemory"]
    ):
        assert verdict.status == "fail" and "noeviction" in verdict.evidence
    else:
        assert verdict.status == "pass", verdict
    assert "3 keys sampled: TTL 30" in verdict.evidence and "0 never expire" in verdict.evidence
    probe_keys.set("tutormax:checklist_probe:forever", "x")
    verdict = _cache_verdict()
    assert verdict.status == "fail" and "1 never expire" in verdict.evidence


def _counting_app(*, limit_after: int | None) -> tuple[FastAPI, list[int]]:
    """A service answering GET /api/tutors; from request `limit_after` on, 429 if given."""
    app, seen = FastAPI(), []

    @app.get("/api/tutors")
    def tutors() -> JSONResponse:
        seen.append(1)
        if limit_after is not None and len(seen) >= limit_after:
            return JSONResponse({"detail": "slow down"}, status_code=429, headers={"Retry-After": "1"})
        return JSONResponse([{"id": 1}])

    return app, seen


def _rate_settings(**overrides: object):
    return load_settings(health={"rate_limit_probe": {"enabled": True, "max_requests": 30}}, **overrides)


def test_a_service_that_limits_passes_at_its_first_429(serve) -> None:
    app, seen = _counting_app(limit_after=LIMIT_AFTER)
    serve(app)
    verdict = check_rate_limit(_rate_settings())
    assert verdict.status == "pass", verdict
    assert (
        f"429 at request {LIMIT_AFTER} of at most 30" in verdict.evidence
        and "Retry-After 1" in verdict.evidence
    )
    assert len(seen) == LIMIT_AFTER  # the burst stops at the first 429


def test_a_service_that_never_limits_fails_after_the_burst(serve) -> None:
    app, seen = _counting_app(limit_after=None)
    serve(app)
    verdict = check_rate_limit(_rate_settings())
    assert (
        verdict.status == "fail"
        and "no 429 in 30 requests" in verdict.evidence
        and "200 × 30" in verdict.evidence
    )
    assert len(seen) == 30


def test_the_burst_is_off_unless_enabled_and_refused_off_the_allowlist(serve) -> None:
    app, seen = _counting_app(limit_after=None)
    serve(app)
    verdict = check_rate_limit(load_settings())
    assert verdict.status == "cannot tell" and "health.rate_limit_probe" in verdict.evidence
    with pytest.raises(PermissionError, match="rate-limit probe host"):
        check_rate_limit(_rate_settings(loadtest={"host_allowlist": ["api.internal"]}))
    assert seen == []  # no request before the refusals


def test_a_bad_probe_setting_names_the_field() -> None:
    with pytest.raises(SettingsError, match="max_requests"):
        load_settings(health={"rate_limit_probe": {"max_requests": 0}})


def test_the_rollback_says_what_would_decide_it(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TUTORMAX_OPS__STORAGE__ARTIFACTS_BASE", tmp_path.as_uri())
    verdict = check_rollback(load_settings())
    assert verdict.status == "cannot tell"
    assert "scratch database" in verdict.evidence and "none under" in verdict.evidence
    dumps = tmp_path / load_settings().health.backup_folder / "run_1"
    dumps.mkdir(parents=True)
    (dumps / "tutormax_abc123.dump").write_bytes(b"PGDMP")
    assert "the newest dump, tutormax_abc123.dump" in check_rollback(load_settings()).evidence


def _dump_into_backups(database: str, artifacts: Path, name: str) -> None:
    """A pg_dump of `database` on tutormax_db's server, where the migrations DAG keeps its backups."""
    import dataclasses

    from airflow.sdk import ObjectStoragePath

    from tutormax_ops.core.conn_ids import DB_CONN_ID
    from tutormax_ops.migrations.backup import choose_pg_dump, dump_to_storage
    from tutormax_ops.migrations.runner import db_target

    target = dataclasses.replace(db_target(DB_CONN_ID), database=database)
    folder = ObjectStoragePath(artifacts.as_uri()) / load_settings().health.backup_folder / name
    folder.mkdir(parents=True, exist_ok=True)
    dump_to_storage(choose_pg_dump(0), target, folder, f"{name}.dump", lock_wait_ms=5000, timeout_s=300)


def _scratch_databases(url: str) -> list[str]:
    import psycopg

    from tutormax_ops.health.rollback import SCRATCH_PREFIX

    with psycopg.connect(url) as conn:
        found = conn.execute(
            "SELECT datname FROM pg_database WHERE starts_with(datname, %s)", (SCRATCH_PREFIX,)
        )
        return [name for (name,) in found]


def _live_revision(url: str) -> list[tuple]:
    import psycopg

    with psycopg.connect(url) as conn:
        return conn.execute("SELECT version_num FROM alembic_version").fetchall()


REHEARSAL = {"health": {"rollback_rehearsal": {"enabled": True}}}


def test_the_rollback_is_rehearsed_on_a_scratch_copy_and_the_live_database_is_untouched(
    airflow_connections, service_db_url, tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("TUTORMAX_OPS__STORAGE__ARTIFACTS_BASE", tmp_path.as_uri())
    _dump_into_backups(urlsplit(service_db_url).path.lstrip("/"), tmp_path, "service")
    live_before = _live_revision(service_db_url)
    verdict = check_rollback(load_settings(**REHEARSAL))
    assert verdict.status == "pass", verdict
    assert "restore of service.dump" in verdict.evidence
    assert "alembic downgrade -1" in verdict.evidence and "alembic upgrade head" in verdict.evidence
    assert _live_revision(service_db_url) == live_before
    assert _scratch_databases(service_db_url) == []  # dropped after the rehearsal


def test_a_rollback_that_cannot_step_down_fails_and_leaves_no_scratch_database(
    airflow_connections, service_db_url, fresh_database, tmp_path, monkeypatch
) -> None:
    """A backup of a database Alembic never touched: there is no revision to step down from."""
    monkeypatch.setenv("TUTORMAX_OPS__STORAGE__ARTIFACTS_BASE", tmp_path.as_uri())
    _dump_into_backups(urlsplit(fresh_database("never_migrated")).path.lstrip("/"), tmp_path, "unmigrated")
    verdict = check_rollback(load_settings(**REHEARSAL))
    assert verdict.status == "fail" and "alembic downgrade -1 failed on the scratch copy" in verdict.evidence
    assert _scratch_databases(service_db_url) == []
