"""Step 5: the report: before/after per table, findings, recommendations and the bloat trend."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg

from tutormax_ops.collectors.postgres.bloat import IndexBloat
from tutormax_ops.collectors.postgres.health import DatabaseXidAge, TableXidAge, XminHolder
from tutormax_ops.collectors.postgres.indexes import DuplicateIndex, InvalidIndex, UnusedIndex
from tutormax_ops.collectors.postgres.queries import StatementDelta
from tutormax_ops.config import Settings, load_settings
from tutormax_ops.conn_ids import DB_CONN_ID, RESULTS_CONN_ID
from tutormax_ops.db import collector_session, load_sql
from tutormax_ops.maintenance.common import Request, from_jsonable, to_jsonable
from tutormax_ops.maintenance.findings import TOP_N, collect_findings
from tutormax_ops.maintenance.plan import Plan
from tutormax_ops.maintenance.recommendations import Recommendation, recommend
from tutormax_ops.maintenance.snapshot import Snapshot
from tutormax_ops.maintenance.tables import TableRow, Totals, latest_bloat, table_rows, totals
from tutormax_ops.maintenance.vacuum import VacuumResult

HISTORY_WEEKS = 12
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HistoryPoint:
    run_id: str
    phase: str
    collected_at: datetime
    bloat_bytes: int | None
    dead_tuples: int | None


@dataclass(frozen=True)
class MaintenanceReport:
    dag_id: str
    run_id: str
    generated_at: datetime
    database: str
    server_version: str
    status: str
    status_detail: str
    database_stats: str
    lock_waited_s: float | None
    request: Request
    totals: Totals
    tables: tuple[TableRow, ...]
    excluded: tuple[str, ...]
    notes: tuple[str, ...]
    most_bloated_tables: tuple[TableRow, ...]
    bloated_indexes: tuple[IndexBloat, ...]
    unused_indexes: tuple[UnusedIndex, ...]
    duplicate_indexes: tuple[DuplicateIndex, ...]
    invalid_indexes: tuple[InvalidIndex, ...]
    slow_queries: tuple[StatementDelta, ...]
    slow_query_ms: float
    statements_unavailable: str | None
    database_xid_ages: tuple[DatabaseXidAge, ...]
    table_xid_ages: tuple[TableXidAge, ...]
    xmin_holders: tuple[XminHolder, ...]
    recommendations: tuple[Recommendation, ...]
    history: tuple[HistoryPoint, ...]
    unavailable: tuple[str, ...]  # sections that could not be collected, with the reason

    @property
    def has_findings(self) -> bool:
        """Something for a person to look at: what `notify=on_findings` emails about."""
        return bool(
            self.status in ("partial", "skipped")
            or self.recommendations
            or self.unavailable
            or self.database_stats.startswith("error")
        )

    @property
    def planned_tables(self) -> tuple[TableRow, ...]:
        return tuple(row for row in self.tables if row.planned)


def build_report(
    *,
    dag_id: str,
    run_id: str,
    plan: Plan,
    before: Snapshot,
    result: VacuumResult,
    after: Snapshot | None,
    settings: Settings,
) -> MaintenanceReport:
    """Collect the findings from `tutormax_db`, the trend from `tutormax_results`, and assemble the report."""
    schemas = list(plan.request.schemas)
    with collector_session(DB_CONN_ID, settings) as conn:
        database = conn.info.dbname
        server_version = conn.execute("SELECT current_setting('server_version')").fetchone()[0]
        findings = collect_findings(conn, schemas, slow_query_ms=settings.alerts.slow_query_ms)
    with collector_session(RESULTS_CONN_ID, settings) as results:
        earlier = load_history(results, settings.storage.results_schema, dag_id=dag_id, run_id=run_id)
    rows = table_rows(plan, before, result, after)
    most_bloated = sorted(
        (row for row in rows if latest_bloat(row)), key=lambda row: -(latest_bloat(row) or 0)
    )[:TOP_N]
    return MaintenanceReport(
        dag_id=dag_id,
        run_id=run_id,
        generated_at=datetime.now(UTC),
        database=database,
        server_version=server_version,
        status=result.status,
        status_detail=result.detail,
        database_stats=result.database_stats,
        lock_waited_s=result.lock_waited_s,
        request=plan.request,
        totals=totals(rows),
        tables=tuple(rows),
        excluded=plan.excluded,
        notes=plan.notes,
        most_bloated_tables=tuple(most_bloated),
        bloated_indexes=tuple(findings.bloated_indexes),
        unused_indexes=tuple(findings.unused_indexes),
        duplicate_indexes=tuple(findings.duplicate_indexes),
        invalid_indexes=tuple(findings.invalid_indexes),
        slow_queries=tuple(findings.slow_queries),
        slow_query_ms=settings.alerts.slow_query_ms,
        statements_unavailable=findings.statements_unavailable,
        database_xid_ages=tuple(findings.database_xid_ages),
        table_xid_ages=tuple(findings.table_xid_ages),
        xmin_holders=tuple(findings.xmin_holders),
        recommendations=tuple(recommend(findings, rows)),
        history=tuple(earlier + current_history(run_id, before, after)),
        unavailable=tuple(findings.unavailable),
    )


def load_history(
    conn: psycopg.Connection, schema: str, *, dag_id: str, run_id: str, weeks: int = HISTORY_WEEKS
) -> list[HistoryPoint]:
    """Earlier runs' totals; none before the results schema exists (the very first run)."""
    try:
        rows = conn.execute(
            load_sql("maintenance/history.sql", schema=schema),
            {"dag_id": dag_id, "run_id": run_id, "weeks": weeks},
        ).fetchall()
    except (psycopg.errors.UndefinedTable, psycopg.errors.InvalidSchemaName):
        return []
    return [HistoryPoint(run, phase, at, bloat, dead) for run, phase, at, bloat, dead in rows]


def current_history(run_id: str, before: Snapshot, after: Snapshot | None) -> list[HistoryPoint]:
    return [
        HistoryPoint(
            run_id,
            snapshot.phase,
            snapshot.collected_at,
            sum(table.bloat_bytes or 0 for table in snapshot.tables),
            sum(table.dead_tuples for table in snapshot.tables),
        )
        for snapshot in (before, after)
        if snapshot is not None
    ]


def report(
    plan: Mapping[str, Any],
    before: Mapping[str, Any],
    result: Mapping[str, Any],
    after: Mapping[str, Any] | None,
    *,
    dag_id: str,
    run_id: str,
) -> dict[str, Any]:
    report = build_report(
        dag_id=dag_id,
        run_id=run_id,
        plan=from_jsonable(Plan, plan),
        before=from_jsonable(Snapshot, before),
        result=from_jsonable(VacuumResult, result),
        after=from_jsonable(Snapshot, after) if after else None,
        settings=load_settings(with_variable=True),
    )
    log.info(
        "report: %s (%s); %d recommendations; sections not collected: %s",
        report.status,
        report.status_detail,
        len(report.recommendations),
        "; ".join(report.unavailable) or "none",
    )
    return to_jsonable(report)
