"""Step 2: check the named schemas and tables, then choose the tables worth the window."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import psycopg

from tutormax_ops.core.config import load_settings
from tutormax_ops.core.conn_ids import DB_CONN_ID
from tutormax_ops.core.db import collector_session, load_sql
from tutormax_ops.maintenance.common import (
    MaintenanceParamError,
    Request,
    TableRef,
    folder_of,
    load_step,
    recording_failure,
    request_from_params,
    resolve_tables,
    save_step,
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
    # "maintain": the mode's statement. "analyze": ANALYZE alone, for a table whose only need is
    # statistics (never analyzed, or many rows changed since). "analyze_parent": a partitioned table, which holds no rows:
    # its partitions are vacuumed on their own, and ANALYZE ONLY refreshes its statistics afterwards
    # (autovacuum never analyzes a partitioned table).
    action: Literal["maintain", "analyze", "analyze_parent"] = "maintain"

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
    changed since the last analyze. A table the run names is taken whatever its figures; a named
    partitioned table stands for its partitions. Each partition is vacuumed once, as a table of its
    own; a partitioned table with a planned partition is analyzed (ONLY) after them.
    """
    parents = snapshot.partitioned
    if only is not None:
        only = only | {leaf.ref for leaf in snapshot.partitions if leaf.parent in only}
    chosen: list[PlannedTable] = []
    left_out: list[str] = []
    below = 0
    for row in snapshot.tables:
        if row.ref in parents or (only is not None and row.ref not in only):
            continue
        if row.ref in excluded:
            left_out.append(row.ref.display)
            continue
        reason, action = _selection_reason(row, request)
        if only is not None and action == "analyze":  # a named table gets the mode's statement
            reason, action = f"named in the run's tables; {reason}", "maintain"
        if reason is None and only is not None:
            reason, action = "named in the run's tables (below the thresholds)", "maintain"
        if reason is None:
            below += 1
            continue
        chosen.append(_planned(row, reason, action=action))
    chosen.sort(key=lambda t: (-(t.xid_age or 0), -t.dead_tuples, t.schema, t.table))
    planned = {table.ref for table in chosen}
    by_ref = {row.ref: row for row in snapshot.tables}
    for parent in sorted(parents, key=lambda ref: (ref.schema, ref.table)):
        leaves = [leaf.ref for leaf in snapshot.partitions if leaf.parent == parent]
        if parent in by_ref and parent not in excluded and planned.intersection(leaves):
            reason = (
                f"partitioned: {len(planned.intersection(leaves))} of its {len(leaves)} partitions planned"
            )
            chosen.append(_planned(by_ref[parent], reason, action="analyze_parent"))
    return Plan(request, tuple(chosen), tuple(left_out), below, notes)


def _planned(row: TableSnapshot, reason: str, *, action: str) -> PlannedTable:
    return PlannedTable(
        row.schema, row.table, reason, row.dead_tuples, row.dead_ratio, row.xid_age, row.total_bytes, action
    )


def _selection_reason(row: TableSnapshot, request: Request) -> tuple[str | None, str]:
    """Why the table is planned (None: it is not), and the action: the mode's statement, or ANALYZE
    alone when only its statistics are stale."""
    if request.mode == "analyze_only":
        return _statistics_reason(row, request.min_dead_tuple_ratio), "maintain"
    reasons = []
    if row.xid_age is not None and row.xid_age >= request.min_xid_age:
        reasons.append(f"xid age {row.xid_age:,} ≥ {request.min_xid_age:,}")
    ratio = row.dead_ratio or 0.0
    if ratio >= request.min_dead_tuple_ratio:
        reasons.append(f"{ratio:.1%} dead tuples ≥ {request.min_dead_tuple_ratio:.1%}")
    statistics = _statistics_reason(row, request.min_mods_since_analyze_ratio)
    if reasons:  # VACUUM (ANALYZE) refreshes the statistics too
        return "; ".join(reasons + ([statistics] if statistics else [])), "maintain"
    return (statistics, "analyze") if statistics else (None, "maintain")


def _statistics_reason(row: TableSnapshot, min_changed_ratio: float) -> str | None:
    """Never analyzed (with rows), or rows changed since the last ANALYZE reach `min_changed_ratio`."""
    if row.last_analyze is None and row.last_autoanalyze is None:
        if row.live_tuples or row.mods_since_analyze:
            return f"never analyzed: the planner has no statistics for its {row.live_tuples:,} rows"
        return None  # empty since it was created: nothing to sample
    changed = row.mods_since_analyze / max(row.live_tuples, 1)
    if row.mods_since_analyze and changed >= min_changed_ratio:
        return (
            f"{row.mods_since_analyze:,} rows changed since the last analyze "
            f"({changed:.1%} of live rows ≥ {min_changed_ratio:.1%})"
        )
    return None


def _fetch_scalars(conn: psycopg.Connection, path: str, params: Mapping[str, Any]) -> list[Any]:
    return [row[0] for row in conn.execute(load_sql(path), dict(params)).fetchall()]


def summary(plan: Plan, path: str, folder: str) -> dict[str, Any]:
    """What travels through XCom: where the plan is, the request and a few counts."""
    return {
        "folder": folder,
        "path": path,
        "request": to_jsonable(plan.request),
        "dry_run": plan.request.dry_run,
        "planned": len(plan.tables),
        "below_thresholds": plan.below_thresholds,
        "excluded": len(plan.excluded),
    }


def plan(params: Mapping[str, Any], before: Mapping[str, Any]) -> dict[str, Any]:
    """Check the params against the database, choose the tables, and save the plan to the run's folder."""
    settings = load_settings(with_variable=True)
    request = request_from_params(params, settings.maintenance)
    folder = folder_of(before)
    snapshot = load_step(Snapshot, folder, "snapshot_before")
    with recording_failure(folder, "plan"), collector_session(DB_CONN_ID, settings) as conn:
        chosen = build_plan(conn, request, snapshot)
    log.info(
        "%s plan: %d tables (%d below thresholds, %d excluded)%s",
        request.mode,
        len(chosen.tables),
        chosen.below_thresholds,
        len(chosen.excluded),
        "; dry run, nothing will be vacuumed" if request.dry_run else "",
    )
    for planned in chosen.tables[:50]:
        log.info("  %s: %s", planned.ref.display, planned.reason)
    if len(chosen.tables) > 50:
        log.info("  … and %d more (the plan is in the run's folder)", len(chosen.tables) - 50)
    return summary(chosen, save_step(folder, "plan", chosen), str(folder))
