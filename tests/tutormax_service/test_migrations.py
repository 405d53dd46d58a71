"""Alembic project: real upgrade/downgrade round trips against PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, pool

from tutormax_service import migrate
from tutormax_service.datagen import generate
from tutormax_service.db import normalize_url
from tutormax_service.models import Base

SERVICE_TABLES = {"tutors", "students", "sessions", "feedback"}
PERFORMANCE_INDEXES = {
    "ix_sessions_tutor_id_scheduled_at",
    "ix_sessions_student_id_scheduled_at",
    "ix_sessions_scheduled_at",
    "ix_feedback_created_at",
}


def _tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
    return {name for (name,) in rows}


def _valid_indexes(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE c.relname LIKE 'ix\\_%' AND i.indisvalid"
        ).fetchall()
    return {name for (name,) in rows}


def _columns(url: str, table: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = %s", (table,)
        ).fetchall()
    return {name for (name,) in rows}


def _alembic_cli(*args: str, env: dict[str, str]) -> str:
    include_dir = Path(migrate.__file__).resolve().parents[1]
    completed = subprocess.run(
        [sys.executable, "-m", "alembic", "-c", str(migrate.ALEMBIC_INI), *args],
        env={**os.environ, "PYTHONPATH": str(include_dir), **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return completed.stdout + completed.stderr


@pytest.fixture
def database_url(fresh_database) -> str:
    return fresh_database("tm_migrations")


def test_models_match_migrations_at_head(database_url: str) -> None:
    migrate.upgrade(database_url)
    assert migrate.current_revision(database_url) == "0003"
    engine = create_engine(normalize_url(database_url), poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    finally:
        engine.dispose()
    assert diff == []


def test_base_head_base_head_round_trip(database_url: str) -> None:
    migrate.upgrade(database_url)
    assert _tables(database_url) >= SERVICE_TABLES
    assert _valid_indexes(database_url) == PERFORMANCE_INDEXES
    assert {"hourly_rate_cents"} <= _columns(database_url, "tutors")

    migrate.downgrade(database_url, "base")
    assert migrate.current_revision(database_url) is None
    assert _tables(database_url) == {"alembic_version"}

    migrate.upgrade(database_url)
    assert migrate.current_revision(database_url) == "0003"
    assert _tables(database_url) >= SERVICE_TABLES
    assert _valid_indexes(database_url) == PERFORMANCE_INDEXES


def test_each_step_down_and_up_with_data(database_url: str) -> None:
    generate(database_url, days=1, sessions_per_day=200, tutors=10, students=50)

    migrate.downgrade(database_url, "0002")
    assert "hourly_rate_cents" not in _columns(database_url, "tutors")
    assert "cancelled_reason" not in _columns(database_url, "sessions")
    migrate.downgrade(database_url, "0001")
    assert _valid_indexes(database_url) == set()

    migrate.upgrade(database_url)
    assert _valid_indexes(database_url) == PERFORMANCE_INDEXES
    with psycopg.connect(database_url) as conn:
        # Existing rows survive the round trip; the re-added rate column takes its default.
        assert conn.execute("SELECT count(*) FROM sessions").fetchone() == (200,)
        assert conn.execute("SELECT DISTINCT hourly_rate_cents FROM tutors").fetchall() == [(4500,)]


def test_cli_takes_url_from_x_argument_or_environment(database_url: str) -> None:
    _alembic_cli("-x", f"db_url={database_url}", "upgrade", "0002", env={})
    assert migrate.current_revision(database_url) == "0002"
    _alembic_cli("upgrade", "head", env={"TUTORMAX_SERVICE_DATABASE_URL": database_url})
    assert migrate.current_revision(database_url) == "0003"
    output = _alembic_cli("-x", f"db_url={database_url}", "downgrade", "base", env={})
    assert "Running downgrade 0002 -> 0001" in output
    assert _tables(database_url) == {"alembic_version"}
