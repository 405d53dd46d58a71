"""Params, the revision graph and the preflight of a migration run (nothing here writes anything).

The graph comes from `alembic history` and `alembic heads`, run through the project's own command,
so a project whose revision files import its own packages works the same way as the reference one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from tutormax_ops.core.config import Settings
from tutormax_ops.core.db import load_sql
from tutormax_ops.core.errors import CannotHeal
from tutormax_ops.migrations.runner import AlembicCommand, DbTarget

ACTIONS = ("upgrade", "downgrade", "preview_sql")
_REVISION = re.compile(r"^[A-Za-z0-9_]{1,64}$")
_HEAD_LINE = re.compile(r"^(?P<rev>[A-Za-z0-9_]+)\b.*\((?:effective )?head\)")
_HISTORY_LINE = re.compile(r"^(?P<down>.+?) -> (?P<rev>[A-Za-z0-9_]+)\b")


class PreflightError(CannotHeal):
    """The run must not go ahead and a retry would not change that; the message says why (and what to do)."""


class BlockedByTransactions(RuntimeError):
    """Long transactions would block the DDL: they may have ended by the retry."""


@dataclass(frozen=True)
class RunParams:
    action: str
    target_revision: str
    backup_first: bool
    confirm: str


def validate_params(params: Mapping[str, Any]) -> RunParams:
    """Clear errors naming the field, before anything touches a server."""
    action = str(params.get("action") or "upgrade")
    if action not in ACTIONS:
        raise ValueError(f"params.action: {action!r} is not one of {list(ACTIONS)}")
    target = str(params.get("target_revision") or "head").strip()
    if target not in ("head", "base") and not _REVISION.match(target):
        raise ValueError(f"params.target_revision: {target!r} is not head, base or a revision id")
    confirm = str(params.get("confirm") or "").strip()
    if action == "downgrade" and confirm != target:
        raise ValueError(
            f"params.confirm: a downgrade runs only when confirm equals target_revision ({target!r}); got {confirm!r}"
        )
    return RunParams(action, target, bool(params.get("backup_first", True)), confirm)


def parse_heads(output: str) -> list[str]:
    return [m["rev"] for line in output.splitlines() if (m := _HEAD_LINE.match(line.strip()))]


def parse_history(output: str) -> dict[str, tuple[str, ...]]:
    """{revision: its down revisions} from `alembic history` lines such as `0001 -> 0002, message`."""
    graph: dict[str, tuple[str, ...]] = {}
    for line in output.splitlines():
        match = _HISTORY_LINE.match(line.strip())
        if match:
            downs = tuple(d.strip() for d in match["down"].split(",") if d.strip() != "<base>")
            graph[match["rev"]] = downs
    return graph


def ancestors(graph: Mapping[str, tuple[str, ...]], revisions: list[str]) -> set[str]:
    """The revisions themselves and everything below them."""
    seen: set[str] = set()
    stack = list(revisions)
    while stack:
        revision = stack.pop()
        if revision not in seen:
            seen.add(revision)
            stack.extend(graph.get(revision, ()))
    return seen


def ordered(graph: Mapping[str, tuple[str, ...]], revisions: set[str]) -> list[str]:
    """Base-first order (a revision after all its down revisions)."""
    done: list[str] = []
    placed: set[str] = set()
    pending = sorted(revisions)
    while pending:
        ready = [r for r in pending if all(d in placed or d not in revisions for d in graph.get(r, ()))]
        if not ready:  # a cycle cannot happen in a valid history; keep the rest as is
            done.extend(pending)
            break
        for revision in ready:
            done.append(revision)
            placed.add(revision)
        pending = [r for r in pending if r not in placed]
    return done


def current_revisions(conn: psycopg.Connection, settings: Settings) -> list[str]:
    project = settings.migrations.project
    qualified = sql.Identifier(project.version_table_schema, project.version_table).as_string(conn)
    (exists,) = conn.execute(
        load_sql("tutormax_migrations/version_table_exists.sql"), {"qualified": qualified}
    ).fetchone()
    if not exists:
        return []
    statement = load_sql("tutormax_migrations/current_revision.sql").format(
        version_table=sql.Identifier(project.version_table_schema, project.version_table)
    )
    return [row[0] for row in conn.execute(statement).fetchall()]


def long_transactions(conn: psycopg.Connection, min_age_s: float) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cursor:
        return cursor.execute(
            load_sql("tutormax_migrations/long_transactions.sql"), {"min_age_s": min_age_s}
        ).fetchall()


def server_version(conn: psycopg.Connection) -> tuple[int, str]:
    version_num, version = conn.execute(load_sql("tutormax_migrations/server_version.sql")).fetchone()
    return int(version_num), str(version)


def preflight(
    params: RunParams, settings: Settings, target: DbTarget, alembic: AlembicCommand, conn: psycopg.Connection
) -> dict[str, Any]:
    """Connectivity, current revision, heads (exactly one), pending revisions, blocking transactions."""
    version_num, version = server_version(conn)
    current = current_revisions(conn, settings)
    heads = parse_heads(alembic.run(["heads"]).stdout)
    if len(heads) > 1:
        raise PreflightError(
            f"the project has {len(heads)} heads {heads}: merge them (`alembic merge {' '.join(heads)}`) first"
        )
    if not heads:
        raise PreflightError("the project has no revision (`alembic heads` listed none)")
    graph = parse_history(alembic.run(["history"]).stdout)
    resolved = {"head": heads[0], "base": None}.get(params.target_revision, params.target_revision)
    if resolved is not None and resolved not in graph:
        raise PreflightError(
            f"params.target_revision: {params.target_revision!r} is not a revision of the project"
        )
    unknown = [revision for revision in current if revision not in graph]
    if unknown:
        raise PreflightError(f"the database is at {unknown}, which the project does not know")
    below_target = ancestors(graph, [resolved] if resolved else [])
    below_current = ancestors(graph, current)
    direction = "downgrade" if below_current - below_target else "upgrade"
    if params.action == "upgrade" and direction == "downgrade":
        raise PreflightError(
            f"the database ({current}) is past target {resolved}: use action downgrade with confirm"
        )
    if params.action == "downgrade" and below_target - below_current:
        raise PreflightError(
            f"target {resolved} is above the database ({current or 'base'}): use action upgrade"
        )
    if direction == "downgrade":
        pending = list(reversed(ordered(graph, below_current - below_target)))
    else:
        pending = ordered(graph, below_target - below_current)
    blocking = long_transactions(conn, settings.migrations.max_transaction_age_s)
    result = {
        "action": params.action,
        "params": asdict(params),
        "server_version": version,
        "server_version_num": version_num,
        "database": f"{target.host}:{target.port}/{target.database}",
        "current": current,
        "heads": heads,
        "target": resolved,
        "direction": direction,
        "pending": pending,
        "long_transactions": blocking,
    }
    if blocking and params.action != "preview_sql" and pending:
        described = "; ".join(
            f"pid {t['pid']} ({t['application_name'] or t['username']}, {t['state']}, {t['age_s']:.0f} s, "
            f"{t['locks_held']} locks)"
            for t in blocking
        )
        raise BlockedByTransactions(
            f"{len(blocking)} transaction(s) open longer than migrations.max_transaction_age_s="
            f"{settings.migrations.max_transaction_age_s:g} s would block DDL: {described}"
        )
    return result
