"""The checklist's "rollback procedure", rehearsed on a scratch copy (`health.rollback_rehearsal`):
the newest backup restored into a new database on `tutormax_db`'s server, `alembic downgrade -1`,
then `alembic upgrade head`, each step timed; the scratch database is dropped whatever happened.
The live database is only read (its server version); nothing runs against it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from psycopg import sql

from tutormax_ops.core.conn_ids import DB_CONN_ID
from tutormax_ops.health.probes import Verdict

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

    from tutormax_ops.core.config import Settings
    from tutormax_ops.migrations.runner import DbTarget

SCRATCH_PREFIX = "tutormax_rollback_rehearsal_"
OUTPUT_TAIL = 400


def rehearse_rollback(settings: Settings, dump: ObjectStoragePath) -> Verdict:
    """Restore `dump` into a scratch database, step one revision down and back up, timed."""
    from tutormax_ops.core.db import collector_session
    from tutormax_ops.migrations.backup import choose_pg_dump
    from tutormax_ops.migrations.runner import AlembicCommand, AlembicError, db_target

    live = db_target(DB_CONN_ID)
    scratch = dataclasses.replace(live, database=f"{SCRATCH_PREFIX}{uuid.uuid4().hex[:12]}")
    with collector_session(DB_CONN_ID, settings) as conn:
        version = int(conn.execute("SELECT current_setting('server_version_num')").fetchone()[0])
    pg_restore = Path(choose_pg_dump(version, settings.migrations.pg_dump_path).path).with_name("pg_restore")
    timeout_s = settings.migrations.command_timeout_s
    timings: list[str] = []
    started = time.monotonic()
    with (
        _scratch_database(settings, scratch),
        tempfile.TemporaryDirectory(prefix="tutormax_rehearsal_") as tmp,
    ):
        local = Path(tmp) / dump.name
        with dump.open("rb") as source, local.open("wb") as sink:
            shutil.copyfileobj(source, sink, 1 << 20)
        step = time.monotonic()
        restored = subprocess.run(
            [
                str(pg_restore),
                "--no-owner",
                "--no-privileges",
                "--exit-on-error",
                "-d",
                scratch.database,
                str(local),
            ],
            env={**os.environ, **scratch.libpq_env()},
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
        if restored.returncode != 0:
            return _failed(f"pg_restore of {dump.name}", restored.stderr, scratch)
        timings.append(f"restore of {dump.name} {time.monotonic() - step:.1f} s")
        alembic = AlembicCommand(settings.migrations.project, scratch, timeout_s=timeout_s)
        for args in (["downgrade", "-1"], ["upgrade", "head"]):
            step = time.monotonic()
            try:
                alembic.run(args)
            except AlembicError as error:  # the tail of Alembic's output, redacted
                return _failed(f"alembic {' '.join(args)}", str(error), scratch)
            timings.append(f"alembic {' '.join(args)} {time.monotonic() - step:.1f} s")
    total = time.monotonic() - started
    limit = settings.health.rollback_rehearsal.max_seconds
    evidence = f"rehearsed on scratch database {scratch.database} (dropped): {', '.join(timings)}; {total:.1f} s in all"
    if total > limit:
        return Verdict("fail", f"{evidence}, over health.rollback_rehearsal.max_seconds {limit:g}")
    return Verdict("pass", evidence)


def _failed(step: str, output: str, scratch: DbTarget) -> Verdict:
    from tutormax_ops.core.notify import redact

    tail = redact(output.strip().replace(scratch.password, "***") if scratch.password else output.strip())
    return Verdict("fail", f"{step} failed on the scratch copy: {tail[-OUTPUT_TAIL:]}")


@contextlib.contextmanager
def _scratch_database(settings: Settings, scratch: DbTarget) -> Iterator[None]:
    """CREATE DATABASE for the rehearsal, DROP … WITH (FORCE) after it, whatever happened."""
    from tutormax_ops.core.db import collector_session

    if not scratch.database.startswith(SCRATCH_PREFIX):  # never anything but a scratch database
        raise ValueError(f"not a scratch database: {scratch.database!r}")
    name = sql.Identifier(scratch.database)
    with collector_session(DB_CONN_ID, settings, read_only=False) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(name))
    try:
        yield
    finally:
        with collector_session(DB_CONN_ID, settings, read_only=False) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
