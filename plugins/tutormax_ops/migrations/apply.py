"""Apply and verify: Alembic under the shared advisory lock with lock/statement timeouts passed
through `PGOPTIONS` (which libpq, and so any psycopg/psycopg2 `env.py`, applies to every session),
then the revision, index validity and pg_stat_statements checks."""

from __future__ import annotations

import logging
import os
from typing import Any

import psycopg
from psycopg import sql

from tutormax_ops.collectors.postgres.indexes import invalid_indexes
from tutormax_ops.core.config import Settings
from tutormax_ops.core.db import load_sql
from tutormax_ops.migrations.plan import PreflightError, current_revisions
from tutormax_ops.migrations.runner import AlembicCommand

log = logging.getLogger(__name__)


class VerifyError(RuntimeError):
    """The database is not in the state the migration promised; the message names what and how to fix it."""


def pgoptions(settings: Settings) -> str:
    """`-c lock_timeout=… -c statement_timeout=…` added to any PGOPTIONS already set."""
    migrations = settings.migrations
    ours = (
        f"-c lock_timeout={migrations.lock_timeout_ms} -c statement_timeout={migrations.statement_timeout_ms}"
    )
    return " ".join(filter(None, [os.environ.get("PGOPTIONS", ""), ours]))


def alembic_args(action: str, current: list[str], target: str | None, *, offline: bool = False) -> list[str]:
    """`upgrade <target>` / `downgrade <target>`; offline (`--sql`) needs an explicit `<from>:<to>` range."""
    goal = target or "base"
    if action == "downgrade":
        return ["downgrade", f"{current[0]}:{goal}", "--sql"] if offline else ["downgrade", goal]
    start = current[0] if current else None
    if offline:
        return ["upgrade", f"{start}:{goal}" if start else goal, "--sql"]
    return ["upgrade", goal]


def apply(
    plan: dict[str, Any], settings: Settings, alembic: AlembicCommand, conn: psycopg.Connection
) -> dict[str, Any]:
    """Run the migration; the caller holds the advisory lock on `conn`."""
    now = current_revisions(conn, settings)
    if now != plan["current"]:
        raise PreflightError(
            f"the database moved from {plan['current']} to {now} since the preflight; rerun it"
        )
    result = alembic.run(
        alembic_args(plan["direction"], now, plan["target"]), env={"PGOPTIONS": pgoptions(settings)}
    )
    return {"from": now, "to": current_revisions(conn, settings), "log_lines": result.output.count("\n") + 1}


def verify(plan: dict[str, Any], settings: Settings, conn: psycopg.Connection) -> dict[str, Any]:
    """Revision == target, no invalid index, pg_stat_statements present (warn if not preloaded)."""
    now = current_revisions(conn, settings)
    expected = [plan["target"]] if plan["target"] else []
    if now != expected:
        raise VerifyError(f"the database is at {now or 'base'}, not at the target {plan['target'] or 'base'}")
    broken = [index for index in invalid_indexes(conn) if not index.build_in_progress]
    if broken:
        fixes = "; ".join(
            sql.SQL("REINDEX INDEX CONCURRENTLY {}").format(sql.Identifier(i.schema, i.index)).as_string(conn)
            for i in broken
        )
        names = ", ".join(f"{i.schema}.{i.index} on {i.table}" for i in broken)
        raise VerifyError(f"{len(broken)} invalid index(es): {names}. Fix: {fixes}")
    warnings = _ensure_pg_stat_statements(conn)
    for warning in warnings:
        log.warning("verify: %s", warning)
    return {"revision": now, "invalid_indexes": 0, "warnings": warnings}


def _ensure_pg_stat_statements(conn: psycopg.Connection) -> list[str]:
    warnings = []
    installed, superuser = conn.execute(
        load_sql("tutormax_migrations/pg_stat_statements_state.sql")
    ).fetchone()
    if not installed and not superuser:  # the migration role may not create it: say who can, try nothing
        warnings.append(
            "pg_stat_statements is not installed in this database; a superuser can run "
            "CREATE EXTENSION pg_stat_statements"
        )
    elif not installed:
        try:
            conn.execute(load_sql("tutormax_migrations/create_pg_stat_statements.sql"))
        except psycopg.Error as error:
            warnings.append(
                f"CREATE EXTENSION pg_stat_statements failed: {error.diag.message_primary or error}"
            )
    (preloaded,) = conn.execute(load_sql("tutormax_migrations/statements_preloaded.sql")).fetchone()
    if not preloaded:
        warnings.append(
            "pg_stat_statements is not in shared_preload_libraries: its views stay empty. Add it "
            "(shared_preload_libraries = 'pg_stat_statements') and restart PostgreSQL."
        )
    return warnings
