"""Step 5: the report: before/after per table, findings, recommendations and the bloat trend."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import psycopg

from tutormax_ops.collectors.postgres.bloat import IndexBloat
from tutormax_ops.collectors.postgres.health import DatabaseXidAge, LockHolder, TableXidAge, XminHolder
from tutormax_ops.collectors.postgres.indexes import DuplicateIndex, InvalidIndex, UnusedIndex
from tutormax_ops.collectors.postgres.queries import StatementDelta
from tutormax_ops.collectors.postgres.tables import SchemaDeadTuples
from tutormax_ops.core.config import Settings, load_settings
from tutormax_ops.core.conn_ids import DB_CONN_ID, RESULTS_CONN_ID
from tutormax_ops.core.db import collector_session, load_sql
from tutormax_ops.maintenance.common import (
    Request,
    error_line,
    load_step,
    recording_failure,
    run_folder,
    save_step,
    step_failures,
)
from tutormax_ops.maintenance.evidence import EvidenceAge, age_for
from tutormax_ops.maintenance.findings import TOP_N, collect_findings, no_findings
from tutormax_ops.maintenance.permissions import PermissionFix, failure_cause, permission_fix
from tutormax_ops.maintenance.plan import Plan
from tutormax_ops.maintenance.recommendations import Recommendation, recommend
from tutormax_ops.maintenance.snapshot import Snapshot
from tutormax_ops.maintenance.tables import TableRow, Totals, latest_bloat, table_rows, totals
from tutormax_ops.maintenance.vacuum import TableOutcome, VacuumResult

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

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
    lock_holders: tuple[LockHolder, ...]  # sessions that held tables skipped as locked
    other_schemas: tuple[SchemaDeadTuples, ...]  # dead tuples in schemas this run did not look at
    recommendations: tuple[Recommendation, ...]
    history: tuple[HistoryPoint, ...]
    unavailable: tuple[str, ...]  # sections that could not be collected, with the reason
    # Tables whose indexes, bloat or sizes were not read (locked by another session, or not vacuumed
    # because they were locked): every section they would have appeared in names them.
    not_inspected: tuple[str, ...]
    min_stats_age_days: float  # no DROP of an unused index before its counters cover this many days
    evidence: EvidenceAge | None  # how long the scan counters have counted, and how that was derived
    incomplete: tuple[str, ...]  # steps that failed after work was done: what this report lacks
    failure: str | None  # why planned tables failed, and the fix: the run fails after sending this
    permission_fix: PermissionFix | None  # the GRANTs that let this role maintain the tables that failed

    @property
    def has_findings(self) -> bool:
        """Something for a person to look at: what `notify=on_findings` emails about."""
        return bool(
            self.status in ("partial", "skipped", "incomplete")
            or self.failure
            or self.incomplete
            or self.recommendations
            or self.unavailable
            or self.database_stats.startswith("error")
        )

    @property
    def planned_tables(self) -> tuple[TableRow, ...]:
        return tuple(row for row in self.tables if row.planned)

    def headline(self) -> str:
        """One line: the status and what the run did (the email's subject, the registry's headline)."""
        totals = self.totals
        return (
            f"{self.status} — {totals.done} of {totals.planned} tables done, "
            f"{totals.dead_tuples_removed:,} dead tuples removed, {len(self.recommendations)} recommendations"
        )

    def key_tables(self, limit: int) -> tuple[TableRow, ...]:
        """The planned tables a reader needs first: those not done, then the done ones, at most `limit`
        (every table stays in tables.csv: at 3,000 rows the HTML was over a megabyte)."""
        planned = self.planned_tables
        return (
            tuple(r for r in planned if r.outcome != "done")
            + tuple(r for r in planned if r.outcome == "done")
        )[:limit]


def build_report(
    *,
    dag_id: str,
    run_id: str,
    plan: Plan,
    before: Snapshot,
    result: VacuumResult,
    after: Snapshot | None,
    settings: Settings,
    incomplete: tuple[str, ...] = (),
) -> MaintenanceReport:
    """Collect the findings from `tutormax_db`, the trend from `tutormax_results`, and assemble the report.

    A database that cannot be reached any more (it went down after the vacuum) leaves the findings
    out with the reason, and the report is still built from what the earlier steps saved.
    """
    schemas = list(plan.request.schemas)
    rows = table_rows(plan, before, result, after)
    locked = {table.ref.display for table in before.tables if table.locked}
    not_inspected = tuple(
        f"{row.name} ({reason})"
        for row, reason in ((row, _not_inspected_reason(row, locked)) for row in rows)
        if reason
    )
    try:
        with (
            collector_session(DB_CONN_ID, settings) as conn,
            collector_session(DB_CONN_ID, settings) as second,
        ):
            database = conn.info.dbname
            server_version = conn.execute("SELECT current_setting('server_version')").fetchone()[0]
            findings = collect_findings(
                conn, schemas, slow_query_ms=settings.alerts.slow_query_ms, second=second
            )
            fix = permission_fix(conn, result.outcomes)
    except psycopg.OperationalError as error:
        database, server_version, fix = "unknown (unreachable)", "unknown", None
        findings = no_findings(f"all findings: the database could not be reached ({error_line(error)})")
    generated_at = datetime.now(UTC)
    schema = settings.storage.results_schema
    try:
        with collector_session(RESULTS_CONN_ID, settings) as results:
            earlier = load_history(results, schema, dag_id=dag_id, run_id=run_id)
            evidence = age_for(results, schema, before.origin, dag_id=dag_id, now=generated_at)
    except psycopg.OperationalError as error:  # built from this run's own files; the next run catches up
        earlier = []
        evidence = age_for(None, schema, before.origin, dag_id=dag_id, now=generated_at)
        findings = dataclasses.replace(
            findings,
            unavailable=[
                *findings.unavailable,
                f"history and trend: {RESULTS_CONN_ID} could not be reached ({error_line(error)}); the "
                "evidence's age counts from this run only",
            ],
        )
    most_bloated = sorted(
        (row for row in rows if latest_bloat(row)), key=lambda row: -(latest_bloat(row) or 0)
    )[:TOP_N]
    failure = failure_cause(result.outcomes, fix)
    return MaintenanceReport(
        dag_id=dag_id,
        run_id=run_id,
        generated_at=generated_at,
        database=database,
        server_version=server_version,
        status="incomplete" if incomplete else result.status,
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
        lock_holders=result.lock_holders,
        other_schemas=tuple(findings.other_schemas),
        recommendations=tuple(
            recommend(findings, rows, settings.maintenance, stats_age_s=evidence.age_s if evidence else None)
        ),
        min_stats_age_days=settings.maintenance.min_stats_age_days,
        evidence=evidence,
        history=tuple(earlier + current_history(run_id, before, after)),
        unavailable=tuple(findings.unavailable),
        not_inspected=not_inspected,
        incomplete=incomplete,
        failure=failure,
        permission_fix=fix,
    )


def _not_inspected_reason(row: TableRow, locked: set[str]) -> str | None:
    if row.name in locked:
        return "locked by another session while the snapshot was taken"
    if row.outcome == "skipped_locked":
        return "locked by another session: not vacuumed"
    return None


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


def unknown_result(plan: Plan, reason: str) -> VacuumResult:
    """The vacuum step left no result (it failed): each planned table's outcome is unknown."""
    outcomes = tuple(
        TableOutcome(planned.schema, planned.table, "unknown", 0.0, reason) for planned in plan.tables
    )
    return VacuumResult("incomplete", reason, outcomes, None, "unknown (the vacuum step failed)", None, 0.0)


def gather(
    folder: ObjectStoragePath,
) -> tuple[Plan, Snapshot, VacuumResult, Snapshot | None, tuple[str, ...]]:
    """What the earlier steps saved, and what is missing because a step failed after work was done."""
    plan = load_step(Plan, folder, "plan")
    before = load_step(Snapshot, folder, "snapshot_before")
    if plan is None or before is None:
        from airflow.sdk.exceptions import AirflowSkipException

        raise AirflowSkipException("no plan: a step failed before anything was vacuumed (see its log)")
    incomplete = []
    failures = step_failures(folder)

    def cause(step: str) -> str:
        return f" ({failures[step]})" if step in failures else ""

    result = load_step(VacuumResult, folder, "vacuum")
    if result is None:
        reason = f"the vacuum step failed{cause('vacuum')}: which planned tables were vacuumed is unknown"
        incomplete.append(reason)
        result = unknown_result(plan, reason)
    after = load_step(Snapshot, folder, "snapshot_after")
    if after is None and not plan.request.dry_run:
        incomplete.append(
            f"the after-snapshot failed{cause('snapshot_after')}: the figures after maintenance are missing"
        )
    return plan, before, result, after, tuple(incomplete)


def summary(report: MaintenanceReport, path: str, folder: str) -> dict[str, Any]:
    """What travels through XCom: where the report is and what decides the email and the run's state."""
    return {
        "folder": folder,
        "path": path,
        "status": report.status,
        "detail": report.status_detail[:500],
        "planned": report.totals.planned,
        "done": report.totals.done,
        "recommendations": len(report.recommendations),
        "failure": (report.failure or "")[:1000] or None,
        "incomplete": [reason[:300] for reason in report.incomplete],
    }


def report(*, dag_id: str, run_id: str) -> dict[str, Any]:
    """Build the report from whatever the earlier steps saved in the run's folder; runs even when a
    step after the vacuum failed, so that work done is always reported (marked incomplete)."""
    settings = load_settings(with_variable=True)
    folder = run_folder(settings, dag_id, run_id)
    plan, before, result, after, incomplete = gather(folder)
    with recording_failure(folder, "report"):
        built = build_report(
            dag_id=dag_id,
            run_id=run_id,
            plan=plan,
            before=before,
            result=result,
            after=after,
            settings=settings,
            incomplete=incomplete,
        )
    log.info(
        "report: %s (%s); %d recommendations; sections not collected: %s; incomplete: %s",
        built.status,
        built.status_detail,
        len(built.recommendations),
        "; ".join(built.unavailable) or "none",
        "; ".join(built.incomplete) or "no",
    )
    return summary(built, save_step(folder, "report", built), str(folder))
