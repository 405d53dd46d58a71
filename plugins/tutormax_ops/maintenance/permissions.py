"""Why planned tables failed, and, for missing privileges, the exact GRANTs that make the next run succeed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import psycopg
from psycopg import sql

from tutormax_ops.core.db import load_sql
from tutormax_ops.maintenance.common import display_name
from tutormax_ops.maintenance.vacuum import TableOutcome

PG17 = 170_000
# An error of one of these shapes means the role lacks a privilege, not that the table is broken.
_PRIVILEGE_MARKERS = (
    "only table or database owner can",
    "permission denied to vacuum",
    "permission denied to analyze",
    "permission denied for schema",
    "must be owner",
)


@dataclass(frozen=True)
class PermissionFix:
    """What a superuser runs, in `database`, so that `role` may maintain every table that failed."""

    role: str
    database: str
    grants: tuple[str, ...]  # statements to run as they are
    advice: str | None  # when no GRANT can do it (PostgreSQL before 17: only the owner may VACUUM)


def lacks_privilege(outcome: TableOutcome) -> bool:
    return outcome.outcome == "error" and any(
        marker in (outcome.detail or "") for marker in _PRIVILEGE_MARKERS
    )


def permission_fix(conn: psycopg.Connection, outcomes: Sequence[TableOutcome]) -> PermissionFix | None:
    """The GRANTs for the tables that failed for lack of privileges (None when none did): USAGE on each
    schema the role may not use, and pg_maintain (PostgreSQL 17+) when it may not maintain a table."""
    refused = [outcome for outcome in outcomes if lacks_privilege(outcome)]
    if not refused:
        return None
    version = conn.info.server_version
    maintain = sql.SQL("OR pg_catalog.has_table_privilege(c.oid, 'MAINTAIN')" if version >= PG17 else "")
    rows = conn.execute(
        load_sql("maintenance/permission_gaps.sql").format(maintain_privilege=maintain),
        {"schemas": [o.schema for o in refused], "tables": [o.table for o in refused]},
    ).fetchall()
    role = conn.execute("SELECT current_user::text").fetchone()[0]
    grantee = sql.Identifier(role)
    grants = [
        sql.SQL("GRANT USAGE ON SCHEMA {} TO {};").format(sql.Identifier(schema), grantee).as_string(conn)
        for schema in sorted({schema for schema, _, usage, _ in rows if not usage})
    ]
    advice = None
    if any(not may_maintain for *_, may_maintain in rows):
        if version >= PG17:
            grants.append(sql.SQL("GRANT pg_maintain TO {};").format(grantee).as_string(conn))
        else:
            advice = (
                "before PostgreSQL 17 no privilege lets a role VACUUM another role's table: run as its owner"
            )
    return PermissionFix(role, conn.info.dbname, tuple(grants), advice)


def failure_cause(outcomes: Sequence[TableOutcome], fix: PermissionFix | None) -> str | None:
    """Why planned tables failed, with the fix where one is known; None when none failed.

    Locked and deferred tables are not failures: the next run takes them.
    """
    errors = [outcome for outcome in outcomes if outcome.outcome == "error"]
    if not errors:
        return None
    refused = [o for o in errors if lacks_privilege(o)]
    causes = []
    if refused:
        if fix is None:
            how = "the database could not be asked which GRANTs are missing; run as the tables' owner"
        else:
            steps = [*fix.grants, *([fix.advice] if fix.advice else [])]
            how = f"as a superuser, in database {fix.database!r}, run: {' '.join(steps)}"
        causes.append(
            f"{len(refused)} of {len(outcomes)} planned tables failed for lack of privileges "
            f"(e.g. {display_name(refused[0].schema, refused[0].table)}: {refused[0].detail}): {how}"
        )
    others = [o for o in errors if o not in refused]
    if others:
        first = others[0]
        causes.append(
            f"{len(others)} of {len(outcomes)} planned tables failed, e.g. "
            f"{display_name(first.schema, first.table)}: {first.detail}"
        )
    return "; ".join(causes)
