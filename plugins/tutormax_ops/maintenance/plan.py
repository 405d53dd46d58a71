"""Step 2: check the named schemas and tables, then choose the tables worth the window."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from tutormax_ops.config import load_settings
from tutormax_ops.conn_ids import DB_CONN_ID
from tutormax_ops.db import collector_session, load_sql
from tutormax_ops.maintenance.common import (
    MaintenanceParamError,
    Request,
    TableRef,
    display_name,
    from_jsonable,
    request_from_params,
    to_jsonable,
)
from tutormax_ops.maintenance.snapshot import Snapshot, TableSnapshot

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PlannedTable:
    schema: str
    table: str
    reason: str
    dead_tuples: int
    dead_ratio: float | None
    xid_age: int | None
    total_bytes: int | None

    @property
    def ref(self) -> TableRef:
        return TableRef(self.schema, self.table)


@dataclass(frozen=True)
class Plan:
    request: Request
    tables: tuple[PlannedTable, ...]  # in the order they are vacuumed
    excluded: tuple[str, ...]  # display names left out by `maintenance.exclude_tables`
    below_thresholds: int  # tables in scope that did not need maintenance
    notes: tuple[str, ...]


def build_plan(conn: psycopg.Connection, request: Request, snapshot: Snapshot) -> Plan:
    """Check the named schemas and tables on the server, then choose tables from the snapshot.

    Raises `MaintenanceParamError` naming the field for an unknown schema or table, before any VACUUM.
    """
    found = set(_fetch_scalars(conn, "maintenance/existing_schemas.sql", {"schemas": list(request.schemas)}))
    missing = [schema for schema in request.schemas if schema not in found]
    if missing:
        raise MaintenanceParamError(
            f"schemas: no schema named {', '.join(map(repr, missing))} in this database"
        )
    named, _ = resolve_tables(conn, request.tables, request.schemas, field="tables", strict=True)
    excluded, unknown = resolve_tables(
        conn, request.exclude_tables, request.schemas, field="maintenance.exclude_tables", strict=False
    )
    notes = tuple(f"maintenance.exclude_tables: no table {name!r} (ignored)" for name in unknown)
    return select_tables(
        snapshot, request, only=frozenset(named) or None, excluded=frozenset(excluded), notes=notes
    )


def resolve_tables(
    conn: psycopg.Connection, names: Sequence[str], schemas: Sequence[str], *, field: str, strict: bool
) -> tuple[list[TableRef], list[str]]:
    """Resolve SQL-style names (unqualified ones through `schemas`); return (tables, unknown names).

    With `strict`, an unknown name, a relation that is not a table or a table outside `schemas`
    raises `MaintenanceParamError` naming `field` instead.
    """
    search_path = sql.SQL(", ").join(map(sql.Identifier, schemas)).as_string(conn)
    resolved: list[TableRef] = []
    unknown: list[str] = []
    for name in names:
        try:
            with conn.transaction():
                # Local to this transaction: the session's own search_path is left as it was.
                conn.execute("SELECT pg_catalog.set_config('search_path', %s, true)", (search_path,))
                rows = conn.execute(load_sql("maintenance/resolve_table.sql"), {"name": name}).fetchall()
        except (psycopg.errors.SyntaxError, psycopg.errors.InvalidName, psycopg.DataError) as error:
            raise MaintenanceParamError(f"{field}: {name!r} is not a valid table name ({error})") from None
        problem = _name_problem(name, rows, schemas)
        if problem is None:
            resolved.append(TableRef(rows[0][0], rows[0][1]))
        elif strict:
            raise MaintenanceParamError(f"{field}: {problem}")
        else:
            unknown.append(name)
    return resolved, unknown


def _name_problem(name: str, rows: Sequence[tuple[str, str, str]], schemas: Sequence[str]) -> str | None:
    if not rows:
        return f"no table {name!r} in this database (searched schemas {list(schemas)})"
    schema, table, kind = rows[0]
    if kind not in ("r", "m", "p"):
        return f"{display_name(schema, table)} is not a table (relkind {kind!r})"
    if schema not in schemas:
        return f"{display_name(schema, table)} is outside schemas {list(schemas)}: add {schema!r} to schemas"
    return None


def select_tables(
    snapshot: Snapshot,
    request: Request,
    *,
    only: frozenset[TableRef] | None = None,
    excluded: frozenset[TableRef] = frozenset(),
    notes: tuple[str, ...] = (),
) -> Plan:
    """The tables worth the window, oldest relfrozenxid first (as flexible_freeze), then most dead tuples.

    Vacuum modes take a table when its dead-tuple ratio reaches `min_dead_tuple_ratio` or its xid age
    reaches `min_xid_age`; analyze_only takes it when never analyzed or when that share of its rows
    changed since the last analyze.
    """
    chosen: list[PlannedTable] = []
    left_out: list[str] = []
    below = 0
    for row in snapshot.tables:
        if only is not None and row.ref not in only:
            continue
        if row.ref in excluded:
            left_out.append(row.ref.display)
            continue
        reason = _selection_reason(row, request)
        if reason is None:
            below += 1
            continue
        chosen.append(
            PlannedTable(
                row.schema, row.table, reason, row.dead_tuples, row.dead_ratio, row.xid_age, row.total_bytes
            )
        )
    chosen.sort(key=lambda t: (-(t.xid_age or 0), -t.dead_tuples, t.schema, t.table))
    return Plan(request, tuple(chosen), tuple(left_out), below, notes)


def _selection_reason(row: TableSnapshot, request: Request) -> str | None:
    if request.mode == "analyze_only":
        if row.last_analyze is None and row.last_autoanalyze is None:
            return "never analyzed"
        changed = row.mods_since_analyze / max(row.live_tuples, 1)
        if changed >= request.min_dead_tuple_ratio:
            return f"{changed:.1%} of rows changed since the last analyze"
        return None
    reasons = []
    if row.xid_age is not None and row.xid_age >= request.min_xid_age:
        reasons.append(f"xid age {row.xid_age:,} ≥ {request.min_xid_age:,}")
    ratio = row.dead_ratio or 0.0
    if ratio >= request.min_dead_tuple_ratio:
        reasons.append(f"{ratio:.1%} dead tuples ≥ {request.min_dead_tuple_ratio:.1%}")
    return "; ".join(reasons) or None


def _fetch_scalars(conn: psycopg.Connection, path: str, params: Mapping[str, Any]) -> list[Any]:
    return [row[0] for row in conn.execute(load_sql(path), dict(params)).fetchall()]


def plan(params: Mapping[str, Any], before: Mapping[str, Any]) -> dict[str, Any]:
    settings = load_settings(with_variable=True)
    request = request_from_params(params, settings.maintenance)
    with collector_session(DB_CONN_ID, settings) as conn:
        plan = build_plan(conn, request, from_jsonable(Snapshot, before))
    log.info(
        "%s plan: %d tables (%d below thresholds, %d excluded)%s",
        request.mode,
        len(plan.tables),
        plan.below_thresholds,
        len(plan.excluded),
        "; dry run, nothing will be vacuumed" if request.dry_run else "",
    )
    for planned in plan.tables:
        log.info("  %s: %s", planned.ref.display, planned.reason)
    return to_jsonable(plan)
