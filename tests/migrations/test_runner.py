"""The Alembic runner: each way of handing the database URL to a project, tried with real Alembic
subprocesses against a scratch database, and the password kept out of every output line."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import psycopg
import pytest

from alembic_projects import write_project
from tutormax_ops.core.config import AlembicProject
from tutormax_ops.migrations.runner import AlembicCommand, AlembicError, DbTarget

SECRET = "s3cr%t p@ss/word"


def _target(url: str, password: str = "") -> DbTarget:
    """The target an Airflow connection would give: user and password decoded from the URL."""
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(url)
    return DbTarget(
        parts.hostname,
        parts.port,
        unquote(parts.username or ""),
        parts.path.lstrip("/"),
        password or unquote(parts.password or ""),
    )


def _revision(url: str, table: str = "alembic_version") -> list[str]:
    with psycopg.connect(url) as conn:
        return [row[0] for row in conn.execute(f"SELECT version_num FROM {table}")]  # noqa: S608 - test constant


@pytest.mark.parametrize("delivery", ["x_arg", "env_url"])
def test_the_reference_project_upgrades_with_the_url_as_x_arg_or_env(delivery: str, fresh_database) -> None:
    url = fresh_database(f"runner_{delivery}")
    project = AlembicProject(url_delivery=delivery)
    AlembicCommand(project, _target(url), timeout_s=300).run(["upgrade", "0001"])
    assert _revision(url) == ["0001"]


@pytest.mark.parametrize("delivery", ["env_parts", "sqlalchemy_url"])
def test_a_second_project_gets_its_url_in_parts_or_as_sqlalchemy_url(
    delivery: str, fresh_database, tmp_path: Path
) -> None:
    url = fresh_database(f"runner_{delivery}")
    config = write_project(tmp_path / "acme").config | {"url_delivery": delivery}
    AlembicCommand(AlembicProject(**config), _target(url), timeout_s=300).run(["upgrade", "head"])
    assert _revision(url) == ["a2"]


def test_the_password_never_reaches_the_log_or_the_result(caplog: pytest.LogCaptureFixture) -> None:
    echo = "import os, sys; print(os.environ['LEAKY_URL']); print(os.environ['LEAKY_URL'], file=sys.stderr); sys.exit(3)"
    project = AlembicProject(
        command=(sys.executable, "-c", echo), url_delivery="env_url", url_env_var="LEAKY_URL"
    )
    target = DbTarget("127.0.0.1", 5432, "ops", "tutormax", SECRET)
    command = AlembicCommand(project, target, timeout_s=60)
    with caplog.at_level(logging.INFO), pytest.raises(AlembicError) as raised:
        command.run(["heads"])
    assert "exited 3" in str(raised.value)
    logged = caplog.text + str(raised.value)
    assert "ops:***@127.0.0.1" in logged or "***@127.0.0.1" in logged
    assert SECRET not in logged and "s3cr%25t" not in logged
    assert SECRET not in repr(target)


def test_x_arg_argv_is_redacted_in_the_log(caplog: pytest.LogCaptureFixture) -> None:
    project = AlembicProject(command=(sys.executable, "-c", "pass"), url_delivery="x_arg")
    command = AlembicCommand(project, DbTarget("127.0.0.1", 5432, "ops", "db", SECRET), timeout_s=60)
    assert any(SECRET.replace(" ", "%20") in part or "s3cr%25t" in part for part in command.argv(["heads"]))
    with caplog.at_level(logging.INFO):
        result = command.run(["heads"])
    assert all("s3cr" not in part for part in result.argv)
    assert "s3cr" not in caplog.text


def test_a_command_past_its_timeout_is_killed() -> None:
    project = AlembicProject(command=(sys.executable, "-c", "import time; time.sleep(60)"))
    command = AlembicCommand(project, DbTarget("127.0.0.1", 5432, "ops", "db"), timeout_s=1)
    with pytest.raises(AlembicError, match="command_timeout_s"):
        command.run(["heads"])


def test_a_missing_ini_names_the_field() -> None:
    with pytest.raises(FileNotFoundError, match="migrations.project.ini_path"):
        AlembicCommand(AlembicProject(ini_path="/nope/alembic.ini"), DbTarget("h", 1, "u", "d"), timeout_s=1)


def test_sqlalchemy_url_delivery_needs_a_python_not_a_command() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="sqlalchemy_url"):
        AlembicProject(url_delivery="sqlalchemy_url", command=("alembic",))
