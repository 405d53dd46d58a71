"""The seed command (compose's tutormax-init, `make demo`, the tests' service database), run as a
subprocess against a real PostgreSQL database that starts with no extensions and no schema."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from alembic.script import ScriptDirectory

from tutormax_service import migrate, seed

SMALL = ["--days", "1", "--sessions-per-day", "300", "--tutors", "20", "--students", "100"]
INCLUDE_DIR = Path(seed.__file__).resolve().parents[1]


def _run_seed(url: str, *extra: str) -> dict:
    completed = subprocess.run(
        [sys.executable, "-m", "tutormax_service.seed", "--database-url", url, *SMALL, *extra],
        env={**os.environ, "PYTHONPATH": str(INCLUDE_DIR)},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


def _rows(url: str, query: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(query).fetchall()


@pytest.fixture(scope="module")
def database_url(fresh_database) -> str:
    return fresh_database("tm_seed")


@pytest.fixture(scope="module")
def first_seed(database_url: str) -> dict:
    assert _rows(database_url, "SELECT extname FROM pg_extension WHERE extname <> 'plpgsql'") == []
    return _run_seed(database_url)


def test_creates_the_extensions_the_collectors_need(database_url: str, first_seed: dict) -> None:
    installed = dict(_rows(database_url, "SELECT extname, extversion FROM pg_extension"))
    assert set(seed.EXTENSIONS) == {"pg_stat_statements", "pgstattuple"}
    assert first_seed["extensions"] == {name: installed[name] for name in seed.EXTENSIONS}
    # pgstattuple answers for a real table (the exact bloat check the collectors run).
    assert _rows(database_url, "SELECT tuple_count FROM pgstattuple('tutors')") == [(20,)]


def test_migrates_to_head_and_loads_the_data(database_url: str, first_seed: dict) -> None:
    head = ScriptDirectory.from_config(migrate.alembic_config(database_url)).get_current_head()
    assert first_seed["revision"] == head
    counts = _rows(
        database_url, "SELECT (SELECT count(*) FROM tutors), (SELECT count(*) FROM students), "
        "(SELECT count(*) FROM sessions)",
    )  # fmt: skip
    assert counts == [(20, 100, 300)]
    assert first_seed["data"]["tables"]["sessions"]["rows"] == 300


def test_reruns_replace_rows_or_keep_them_when_asked(database_url: str, first_seed: dict) -> None:
    before = _rows(database_url, "SELECT count(*), max(id) FROM sessions")
    kept = _run_seed(database_url, "--only-if-empty")
    assert kept["data"] == "kept: 20 tutors already loaded"
    assert _rows(database_url, "SELECT count(*), max(id) FROM sessions") == before
    reloaded = _run_seed(database_url)
    # Replaced, not appended: same counts, identities restarted.
    assert reloaded["data"]["tables"]["sessions"]["rows"] == 300
    assert _rows(database_url, "SELECT count(*), max(id) FROM sessions") == [(300, 300)]
    assert reloaded["extensions"] == first_seed["extensions"]


def test_names_the_missing_database_url() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "tutormax_service.seed", "--days", "1"],
        env={k: v for k, v in os.environ.items() if k != "TUTORMAX_SERVICE_DATABASE_URL"}
        | {"PYTHONPATH": str(INCLUDE_DIR)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 2
    assert "--database-url" in completed.stderr
