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
from pathlib import Path

import pytest

from tutormax_ops import devstack
from tutormax_ops.paths import STATE_DIR

TEST_STATE = STATE_DIR / "test"
SECOND_PG_ENV = "TUTORMAX_TEST_PG2_URL"

shutil.rmtree(TEST_STATE, ignore_errors=True)
AIRFLOW_ENV = devstack.airflow_environment(TEST_STATE / "airflow_home")
os.environ.update(AIRFLOW_ENV)


@pytest.fixture(scope="session")
def stack() -> Iterator[devstack.Stack]:
    with devstack.running_stack(TEST_STATE / "stack") as running:
        yield running


def _pg_servers() -> list[str]:
    """The primary server, plus a second major version when TUTORMAX_TEST_PG2_URL names one."""
    return ["primary", "second"] if os.environ.get(SECOND_PG_ENV) else ["primary"]


@pytest.fixture(scope="session", params=_pg_servers())
def pg_admin_url(request: pytest.FixtureRequest, stack: devstack.Stack) -> str:
    """A superuser URL (database `postgres`) on a test server: each DB test runs on every server."""
    if request.param == "second":
        return os.environ[SECOND_PG_ENV]
    return stack.pg_admin_url or devstack.with_database(stack.endpoints.db_url, "postgres")


_database_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def fresh_database(pg_admin_url: str) -> Callable[[str], str]:
    """`fresh_database(hint)` creates a new empty database and returns its URL."""

    def create(name_hint: str) -> str:
        hint = re.sub(r"[^a-z0-9_]+", "_", name_hint.lower())[:40]
        return devstack.create_database(pg_admin_url, f"t_{os.getpid()}_{next(_database_numbers)}_{hint}")

    return create


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


@pytest.fixture
def airflow_connections(stack: devstack.Stack, monkeypatch: pytest.MonkeyPatch) -> devstack.Endpoints:
    """AIRFLOW_CONN_* for the test servers, for one test."""
    for name, value in stack.endpoints.airflow_env().items():
        monkeypatch.setenv(name, value)
    return stack.endpoints
