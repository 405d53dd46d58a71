"""Run an Alembic project's CLI as a subprocess, configured only by `migrations.project`.

The database URL comes from the `tutormax_db` connection and reaches the project the way its
`env.py` expects (`url_delivery`). Output streams line by line into the task log with the password
and any URL credentials removed; the process gets its own session so a timeout kills it whole.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from urllib.parse import quote

from tutormax_ops.core.config import AlembicProject, Settings
from tutormax_ops.core.conn_ids import DB_CONN_ID
from tutormax_ops.core.errors import CannotHeal
from tutormax_ops.core.notify import redact
from tutormax_ops.core.paths import PROJECT_ROOT

log = logging.getLogger(__name__)

# `sqlalchemy.url` delivery: Alembic's own CLI, with the URL set on the Config from the environment
# (never written to a file; '%' doubled for configparser).
_SET_URL_AND_RUN = (
    "import os, sys\n"
    "from alembic.config import CommandLine\n"
    "class WithUrl(CommandLine):\n"
    "    def run_cmd(self, config, options):\n"
    "        config.set_main_option('sqlalchemy.url', os.environ.pop('{var}').replace('%', '%%'))\n"
    "        super().run_cmd(config, options)\n"
    "WithUrl(prog='alembic').main(sys.argv[1:])\n"
)
_URL_VAR = "TUTORMAX_OPS_ALEMBIC_URL"


@dataclass(frozen=True)
class DbTarget:
    """The `tutormax_db` connection's parts (the password stays out of every repr)."""

    host: str
    port: int
    user: str
    database: str
    password: str = ""

    def __repr__(self) -> str:
        return (
            f"DbTarget(host={self.host!r}, port={self.port}, user={self.user!r}, database={self.database!r})"
        )

    def url(self, scheme: str) -> str:
        auth = quote(self.user, safe="") + (f":{quote(self.password, safe='')}" if self.password else "")
        return f"{scheme}://{auth}@{self.host}:{self.port}/{quote(self.database, safe='')}"

    def libpq_env(self) -> dict[str, str]:
        """PG* variables for pg_dump: the password never goes on a command line."""
        env = {
            "PGHOST": self.host,
            "PGPORT": str(self.port),
            "PGUSER": self.user,
            "PGDATABASE": self.database,
        }
        return env | ({"PGPASSWORD": self.password} if self.password else {})


def db_target(conn_id: str) -> DbTarget:
    from airflow.sdk import BaseHook

    conn = BaseHook.get_connection(conn_id)
    return DbTarget(
        host=conn.host or "127.0.0.1",
        port=int(conn.port or 5432),
        user=conn.login or "",
        database=conn.schema or "postgres",
        password=conn.password or "",
    )


class AlembicError(CannotHeal):
    """Alembic exited non-zero (or ran past `command_timeout_s`); the message holds the redacted tail
    of its output. A retry would run the same failing migration again."""


@dataclass(frozen=True)
class AlembicResult:
    argv: tuple[str, ...]  # redacted, as every field
    returncode: int
    stdout: str
    output: str  # stdout and stderr interleaved


def resolve_path(value: str) -> Path:
    path = Path(value)
    return path if path.is_absolute() else PROJECT_ROOT / path


class AlembicCommand:
    """Builds argv and environment for one project and runs Alembic sub-commands."""

    def __init__(self, project: AlembicProject, target: DbTarget, *, timeout_s: float) -> None:
        self.project = project
        self.target = target
        self.timeout_s = timeout_s
        self.ini = resolve_path(project.ini_path)
        if not self.ini.is_file():
            raise FileNotFoundError(f"migrations.project.ini_path: {self.ini} does not exist")
        self.cwd = resolve_path(project.working_dir) if project.working_dir else self.ini.parent
        if not self.cwd.is_dir():
            raise FileNotFoundError(f"migrations.project.working_dir: {self.cwd} is not a directory")
        self.secrets = [s for s in (target.password, quote(target.password, safe="")) if s]

    def argv(self, args: Sequence[str]) -> list[str]:
        project = self.project
        python = project.python or sys.executable
        if project.url_delivery == "sqlalchemy_url":
            prefix = [python, "-c", _SET_URL_AND_RUN.replace("{var}", _URL_VAR)]
        else:
            prefix = list(project.command) or [python, "-m", "alembic"]
        x_args: list[str] = []
        if project.url_delivery == "x_arg":
            x_args = ["-x", f"{project.x_arg_name}={self.target.url(project.url_scheme)}"]
        return [*prefix, "-c", str(self.ini), *x_args, *args]

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        project = self.project
        env = dict(os.environ)
        if project.pythonpath:
            paths = [str(resolve_path(p)) for p in project.pythonpath]
            env["PYTHONPATH"] = os.pathsep.join([*paths, *filter(None, [env.get("PYTHONPATH")])])
        env.update(project.env)
        url = self.target.url(project.url_scheme)
        if project.url_delivery == "env_url":
            env[project.url_env_var] = url
        elif project.url_delivery == "sqlalchemy_url":
            env[_URL_VAR] = url
        elif project.url_delivery == "env_parts":
            names = project.parts_env
            env.update(
                {
                    names.host: self.target.host,
                    names.port: str(self.target.port),
                    names.user: self.target.user,
                    names.password: self.target.password,
                    names.database: self.target.database,
                }
            )
        env.update(extra or {})
        return env

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return redact(text)

    def run(self, args: Sequence[str], *, env: Mapping[str, str] | None = None) -> AlembicResult:
        """Run `alembic <args>`; each (redacted) line of stdout and stderr goes to the task log as it comes."""
        argv = self.argv(args)
        shown = tuple(self.scrub(part) for part in argv)
        log.info("$ alembic %s  (in %s)", " ".join(shown[-len(args) :]), self.cwd)
        process = subprocess.Popen(
            argv,
            cwd=self.cwd,
            env=self.env(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        timed_out = threading.Event()
        timer = threading.Timer(self.timeout_s, lambda: (timed_out.set(), _kill_group(process)))
        stdout: list[str] = []
        combined: list[str] = []
        readers = [
            threading.Thread(target=self._pump, args=(process.stdout, [stdout, combined]), daemon=True),
            threading.Thread(target=self._pump, args=(process.stderr, [combined]), daemon=True),
        ]
        timer.start()
        try:
            for reader in readers:
                reader.start()
            returncode = process.wait()
            for reader in readers:
                reader.join()
        finally:
            timer.cancel()
            if process.poll() is None:
                _kill_group(process)
        if timed_out.is_set():
            raise AlembicError(
                f"alembic {' '.join(args)} exceeded migrations.command_timeout_s={self.timeout_s:.0f} and was killed"
            )
        if returncode != 0:
            raise AlembicError(f"alembic {' '.join(args)} exited {returncode}:\n" + "\n".join(combined[-40:]))
        return AlembicResult(shown, returncode, "\n".join(stdout), "\n".join(combined))

    def _pump(self, stream: IO[str], sinks: list[list[str]]) -> None:
        for raw in stream:
            line = self.scrub(raw.rstrip("\n"))
            for sink in sinks:
                sink.append(line)
            log.info("alembic| %s", line)


def project_command(settings: Settings) -> AlembicCommand:
    """The configured project (`migrations.project`) against the `tutormax_db` connection."""
    return AlembicCommand(
        settings.migrations.project, db_target(DB_CONN_ID), timeout_s=settings.migrations.command_timeout_s
    )


def newest_change(alembic: AlembicCommand, head: str) -> str:
    """The message of revision `head` (`alembic show`: the first indented line after its header)."""
    body = alembic.run(["show", head]).stdout.splitlines()
    return next((line.strip() for line in body if line.startswith((" ", "\t")) and line.strip()), "")


def _kill_group(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
