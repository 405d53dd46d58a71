"""Set-based data generator: row counts, consistency, determinism, append mode and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from tutormax_service import datagen
from tutormax_service.datagen import generate
from tutormax_service.models import SUBJECTS

SMALL = {"days": 1, "sessions_per_day": 2000, "tutors": 100, "students": 1000}


def _one(url: str, query: str | sql.Composable, params: tuple | None = None) -> tuple:
    with psycopg.connect(url) as conn:
        return conn.execute(query, params).fetchone()


def _fingerprint(url: str) -> tuple:
    """Content checksum independent of timestamps (which move with now())."""
    return _one(
        url,
        "SELECT (SELECT sum(hashtext(full_name || email || array_to_string(subjects, ',') || hourly_rate_cents))"
        " FROM tutors),"
        " (SELECT sum(hashtext(tutor_id || '/' || student_id || subject || duration_minutes || status)) FROM sessions),"
        " (SELECT sum(hashtext(session_id || '/' || rating || coalesce(comment, ''))) FROM feedback)",
    )


@pytest.fixture(scope="module")
def database_url(fresh_database) -> str:
    return fresh_database("tm_datagen")


@pytest.fixture(scope="module")
def first_run(database_url: str) -> dict:
    return generate(database_url, **SMALL)


def test_row_counts_match_request_and_database(database_url: str, first_run: dict) -> None:
    tables = first_run["tables"]
    assert tables["tutors"]["rows"] == 100
    assert tables["students"]["rows"] == 1000
    assert tables["sessions"]["rows"] == 2000
    completed = _one(database_url, "SELECT count(*) FROM sessions WHERE status = 'completed'")[0]
    assert 0 <= tables["feedback"]["rows"] <= completed
    for table in ("tutors", "students", "sessions", "feedback"):
        count_rows = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
        assert _one(database_url, count_rows)[0] == tables[table]["rows"]
        assert (tables[table]["rows_per_second"] > 0) == (tables[table]["rows"] > 0)
    assert first_run["total_rows"] == sum(entry["rows"] for entry in tables.values())
    assert first_run["load_seconds"] < 30


def test_generated_data_is_consistent(database_url: str, first_run: dict) -> None:
    # Every session's subject is one its tutor teaches, and times sit in 07:00-21:45 UTC slots.
    assert _one(
        database_url,
        "SELECT count(*) FROM sessions s JOIN tutors t ON t.id = s.tutor_id WHERE NOT s.subject = ANY(t.subjects)",
    ) == (0,)
    assert _one(
        database_url,
        "SELECT count(*) FROM sessions WHERE extract(hour FROM scheduled_at AT TIME ZONE 'UTC') NOT BETWEEN 7 AND 21"
        " OR extract(minute FROM scheduled_at)::int % 15 <> 0",
    ) == (0,)
    assert _one(
        database_url, "SELECT count(*) FROM tutors WHERE NOT subjects <@ %s::text[]", (list(SUBJECTS),)
    ) == (0,)
    # Denormalised rating totals agree with the feedback rows.
    assert _one(
        database_url,
        "SELECT count(*) FROM tutors t LEFT JOIN (SELECT s.tutor_id, sum(f.rating) AS total, count(*) AS n"
        " FROM feedback f JOIN sessions s ON s.id = f.session_id GROUP BY s.tutor_id) a ON a.tutor_id = t.id"
        " WHERE t.rating_sum <> coalesce(a.total, 0) OR t.rating_count <> coalesce(a.n, 0)",
    ) == (0,)
    # Only completed sessions carry feedback, cancellations carry a reason.
    assert _one(
        database_url,
        "SELECT count(*) FROM feedback f JOIN sessions s ON s.id = f.session_id WHERE s.status <> 'completed'",
    ) == (0,)
    assert _one(
        database_url,
        "SELECT count(*) FROM sessions WHERE (status = 'cancelled') <> (cancelled_reason IS NOT NULL)",
    ) == (0,)


def test_indexes_and_foreign_keys_survive_the_bulk_load(database_url: str, first_run: dict) -> None:
    assert _one(
        database_url,
        "SELECT count(*) FROM pg_indexes WHERE tablename IN ('sessions', 'feedback') AND indexname LIKE 'ix\\_%'",
    ) == (4,)
    assert _one(
        database_url,
        "SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND conrelid IN ('sessions'::regclass, 'feedback'::regclass)",
    ) == (3,)


def test_rerun_truncates_and_is_deterministic(fresh_database) -> None:
    database_url = fresh_database("tm_datagen_rerun")  # its own: it rewrites the data twice
    generate(database_url, **SMALL)
    before = _fingerprint(database_url)
    second = generate(database_url, **SMALL)
    assert second["tables"]["sessions"]["rows"] == 2000
    assert _one(database_url, "SELECT count(*), min(id) FROM sessions") == (2000, 1)
    assert _fingerprint(database_url) == before
    generate(database_url, **SMALL, seed=43)
    assert _fingerprint(database_url) != before


def test_append_adds_rows(fresh_database) -> None:
    database_url = fresh_database("tm_datagen_append")  # its own: the other tests read the first run's rows
    generate(database_url, **SMALL)
    result = generate(database_url, **SMALL, seed=7, append=True)
    assert result["append"] is True
    assert _one(database_url, "SELECT count(*), count(DISTINCT email) FROM tutors") == (200, 200)
    assert _one(database_url, "SELECT count(*) FROM sessions") == (4000,)


def test_rejects_nonsense_parameters(database_url: str) -> None:
    with pytest.raises(ValueError):
        generate(database_url, days=0)
    with pytest.raises(ValueError):
        generate(database_url, days=1, feedback_ratio=1.5)


def test_cli_prints_rates_and_a_final_json_line(fresh_database) -> None:
    url = fresh_database("tm_datagen_cli")
    include_dir = Path(datagen.__file__).resolve().parents[1]
    completed = subprocess.run(
        [sys.executable, "-m", "tutormax_service.datagen", "--database-url", url, "--days", "2",
         "--sessions-per-day", "500", "--tutors", "20", "--students", "100", "--seed", "3"],
        env={**os.environ, "PYTHONPATH": str(include_dir)},
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    lines = completed.stdout.strip().splitlines()
    assert any(line.startswith("sessions") and "rows/s" in line for line in lines)
    assert any(line.startswith("total") and "rows/s" in line for line in lines)
    summary = json.loads(lines[-1])
    assert summary["tables"]["sessions"]["rows"] == 1000
    assert summary["total_rows"] == sum(entry["rows"] for entry in summary["tables"].values())
