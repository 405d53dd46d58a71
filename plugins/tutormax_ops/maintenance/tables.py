"""The report's per-table rows: planned or not, the outcome, and the figures before and after."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from tutormax_ops.maintenance.common import TableRef
from tutormax_ops.maintenance.plan import Plan
from tutormax_ops.maintenance.snapshot import Snapshot, TableSnapshot
from tutormax_ops.maintenance.vacuum import VacuumResult


@dataclass(frozen=True)
class TableRow:
    """One table in scope: whether it was planned, what happened, and its figures before and after."""

    schema: str
    table: str
    name: str  # display name, quoted where SQL needs it
    planned: bool
    reason: str | None
    outcome: str | None
    duration_s: float | None
    detail: str | None
    has_after: bool  # measured again after maintenance (not on a dry run)
    total_bytes_before: int | None  # None while another session held ACCESS EXCLUSIVE on the table
    total_bytes_after: int | None
    dead_tuples_before: int
    dead_tuples_after: int | None
    reusable_bytes: int | None  # the heap's share of the dead tuples removed (estimate)
    bloat_bytes_before: int | None
    bloat_bytes_after: int | None
    bloat_ratio_after: float | None
    bloat_note: str | None  # why there is no bloat estimate, where there is none
    last_vacuum_before: datetime | None  # the later of manual and autovacuum
    last_vacuum_after: datetime | None
    last_analyze_before: datetime | None
    last_analyze_after: datetime | None


@dataclass(frozen=True)
class Totals:
    planned: int
    done: int
    skipped_locked: int
    timed_out: int
    error: int
    deferred: int
    reusable_bytes: int  # space of the dead tuples removed, now free for new rows (estimate)
    disk_bytes_freed: (
        int  # on-disk size before minus after; VACUUM's visibility and free-space maps count too
    )
    dead_tuples_removed: int


def table_rows(plan: Plan, before: Snapshot, result: VacuumResult, after: Snapshot | None) -> list[TableRow]:
    """Planned tables first, in plan order, then the rest of the scope by size."""
    planned = {table.ref: table for table in plan.tables}
    order = {ref: index for index, ref in enumerate(planned)}
    outcomes = {TableRef(o.schema, o.table): o for o in result.outcomes}
    later = {row.ref: row for row in after.tables} if after else {}
    rows = []
    for old in before.tables:
        new = later.get(old.ref)
        outcome = outcomes.get(old.ref)
        rows.append(
            TableRow(
                schema=old.schema,
                table=old.table,
                name=old.ref.display,
                planned=old.ref in planned,
                reason=planned[old.ref].reason if old.ref in planned else None,
                outcome=outcome.outcome if outcome else ("planned" if old.ref in planned else None),
                duration_s=outcome.duration_s if outcome else None,
                detail=outcome.detail if outcome else None,
                has_after=new is not None,
                total_bytes_before=old.total_bytes,
                total_bytes_after=new.total_bytes if new else None,
                dead_tuples_before=old.dead_tuples,
                dead_tuples_after=new.dead_tuples if new else None,
                reusable_bytes=_reusable_bytes(old, new),
                bloat_bytes_before=old.bloat_bytes,
                bloat_bytes_after=new.bloat_bytes if new else None,
                bloat_ratio_after=(new or old).bloat_ratio,
                bloat_note=_no_estimate_reason(new or old),
                last_vacuum_before=_latest(old.last_vacuum, old.last_autovacuum),
                last_vacuum_after=_latest(new.last_vacuum, new.last_autovacuum) if new else None,
                last_analyze_before=_latest(old.last_analyze, old.last_autoanalyze),
                last_analyze_after=_latest(new.last_analyze, new.last_autoanalyze) if new else None,
            )
        )
    rows.sort(
        key=lambda row: (
            order.get(TableRef(row.schema, row.table), len(order)),
            -(row.total_bytes_before or 0),
        )
    )
    return rows


def totals(rows: Sequence[TableRow]) -> Totals:
    planned = [row for row in rows if row.planned]
    done = [row for row in planned if row.outcome == "done"]
    measured = [
        row for row in done if row.total_bytes_before is not None and row.total_bytes_after is not None
    ]

    def count(outcome: str) -> int:
        return sum(1 for row in planned if row.outcome == outcome)

    return Totals(
        planned=len(planned),
        done=count("done"),
        skipped_locked=count("skipped_locked"),
        timed_out=count("timed_out"),
        error=count("error"),
        deferred=count("deferred"),
        reusable_bytes=sum(row.reusable_bytes or 0 for row in done),
        disk_bytes_freed=sum(row.total_bytes_before - row.total_bytes_after for row in measured),
        dead_tuples_removed=sum(
            max(row.dead_tuples_before - (row.dead_tuples_after or 0), 0) for row in done
        ),
    )


def _reusable_bytes(old: TableSnapshot, new: TableSnapshot | None) -> int | None:
    """Heap bytes times the share of its row versions that VACUUM removed."""
    if new is None or old.heap_bytes is None or not old.live_tuples + old.dead_tuples:
        return None
    removed = max(old.dead_tuples - new.dead_tuples, 0)
    return round(old.heap_bytes * removed / (old.live_tuples + old.dead_tuples))


def _no_estimate_reason(table: TableSnapshot) -> str | None:
    if table.bloat_bytes is not None:
        return None
    if table.locked:
        return "not read: another session held ACCESS EXCLUSIVE on it"
    if table.last_analyze is None and table.last_autoanalyze is None:
        return "no estimate: never analyzed, so pg_stats has no statistics for it"
    return "no estimate: pg_stats lacks some columns (not readable by this role, or of type name)"


def _latest(*moments: datetime | None) -> datetime | None:
    return max((moment for moment in moments if moment is not None), default=None)


def latest_bloat(row: TableRow) -> int | None:
    return row.bloat_bytes_after if row.bloat_bytes_after is not None else row.bloat_bytes_before
