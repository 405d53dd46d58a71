"""The maintenance report: before/after per table, findings from the collectors, recommendations with
the SQL to run, and the bloat trend from the history table; rendered as HTML, CSV, JSON and charts,
stored per DAG run and emailed.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from tutormax_ops.collectors.postgres.bloat import IndexBloat, index_bloat
from tutormax_ops.collectors.postgres.health import (
    DatabaseXidAge,
    TableXidAge,
    XminHolder,
    database_xid_ages,
    table_xid_ages,
    xmin_holders,
)
from tutormax_ops.collectors.postgres.indexes import (
    DuplicateIndex,
    InvalidIndex,
    UnusedIndex,
    duplicate_indexes,
    invalid_indexes,
    unused_indexes,
)
from tutormax_ops.collectors.postgres.queries import StatementDelta, slow_queries, statements_snapshot
from tutormax_ops.core.config import Settings, load_settings
from tutormax_ops.core.conn_ids import DB_CONN_ID, RESULTS_CONN_ID
from tutormax_ops.core.db import collector_session, load_sql
from tutormax_ops.core.notify import redact, send_email
from tutormax_ops.core.reports import data_uri_png, line_chart_png, render, to_csv, to_json
from tutormax_ops.core.storage import ensure_results_schema, replace_run_rows, run_artifacts_dir, upsert_rows
from tutormax_ops.maintenance import (
    Plan,
    Request,
    Snapshot,
    TableRef,
    TableSnapshot,
    VacuumResult,
    display_name,
    error_line,
    from_jsonable,
    to_jsonable,
)

HISTORY_WEEKS = 12
TOP_N = 10
EMAIL_TABLES = 15
CHARTS = {"bloat": "bloat.png", "dead_tuples": "dead_tuples.png"}
# What the email carries: the full report, its table as CSV, and the charts it shows inline (cid:).
EMAIL_ATTACHMENTS = ("report.html", "tables.csv", *CHARTS.values())
METRICS_KEY = ("dag_id", "run_id", "phase", "schema_name", "table_name")
# The `table_metrics` columns that a TableSnapshot field of the same name fills.
METRIC_COLUMNS = (
    "total_bytes",
    "table_bytes",
    "index_bytes",
    "toast_bytes",
    "live_tuples",
    "dead_tuples",
    "dead_ratio",
    "bloat_bytes",
    "bloat_ratio",
    "last_vacuum",
    "last_autovacuum",
    "last_analyze",
    "last_autoanalyze",
)
_REINDEX = "REINDEX INDEX CONCURRENTLY {};"
_DROP_INDEX = "DROP INDEX CONCURRENTLY {};"
# pg_repack rewrites a table online (brief locks only); it is a client program, so this is its command.
_REPACK = "-- pg_repack --table={}  (run from a shell; needs the pg_repack extension)"
_FREEZE = "VACUUM (FREEZE, ANALYZE) {};"
_PASSWORD_LITERAL = re.compile(r"(PASSWORD\s+)'(?:[^']|'')*'", re.IGNORECASE)
Row = TypeVar("Row")
log = logging.getLogger(__name__)


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


@dataclass(frozen=True)
class Recommendation:
    kind: str
    target: str
    reason: str
    sql: str
    size_bytes: int | None = None


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


# --- Building -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Findings:
    bloated_indexes: list[IndexBloat]
    unused_indexes: list[UnusedIndex]
    duplicate_indexes: list[DuplicateIndex]
    invalid_indexes: list[InvalidIndex]
    slow_queries: list[StatementDelta]
    statements_unavailable: str | None
    database_xid_ages: list[DatabaseXidAge]
    table_xid_ages: list[TableXidAge]
    xmin_holders: list[XminHolder]
    unavailable: list[str]


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
        (row for row in rows if _latest_bloat(row)), key=lambda row: -(_latest_bloat(row) or 0)
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


def collect_findings(conn: psycopg.Connection, schemas: Sequence[str], *, slow_query_ms: float) -> _Findings:
    """Every collector the report shows. One that fails (a timeout on a huge catalog, a missing
    privilege) leaves its section empty with the reason, instead of losing the whole report."""
    unavailable: list[str] = []

    def section(name: str, collect: Callable[[], list[Row]]) -> list[Row]:
        try:
            return collect()
        except psycopg.Error as error:
            if conn.broken:
                raise
            unavailable.append(f"{name}: {error_line(error)}")
            return []

    statements = statements_snapshot(conn)  # says itself why pg_stat_statements cannot be read
    slow = (
        slow_queries(None, statements, min_duration_ms=slow_query_ms, limit=TOP_N)
        if statements.available
        else []
    )
    return _Findings(
        bloated_indexes=section(
            "index bloat",
            lambda: [row for row in index_bloat(conn, schemas=schemas) if row.bloat_bytes][:TOP_N],
        ),
        unused_indexes=section("unused indexes", lambda: unused_indexes(conn, schemas=schemas)),
        duplicate_indexes=section("duplicate indexes", lambda: duplicate_indexes(conn, schemas=schemas)),
        invalid_indexes=section("invalid indexes", lambda: invalid_indexes(conn, schemas=schemas)),
        # Statement texts are normalised by pg_stat_statements, but utility statements keep literals.
        slow_queries=[dataclasses.replace(row, query=sanitize_query(row.query)) for row in slow],
        statements_unavailable=None
        if statements.available
        else f"{statements.reason}. Fix: {statements.fix}",
        database_xid_ages=section("database xid ages", lambda: database_xid_ages(conn)),
        table_xid_ages=section("table xid ages", lambda: table_xid_ages(conn, schemas=schemas, limit=TOP_N)),
        # Another session's query text may hold anything, secrets included: it is not reported.
        xmin_holders=[
            dataclasses.replace(row, query=None)
            for row in section("xmin holders", lambda: xmin_holders(conn))
        ],
        unavailable=unavailable,
    )


def sanitize_query(query: str) -> str:
    return redact(_PASSWORD_LITERAL.sub(r"\1'***'", query))


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


def recommend(
    findings: _Findings,
    rows: Sequence[TableRow],
    *,
    reindex_min_percent: float = 30.0,
    reindex_min_bytes: int = 1 << 20,
    rewrite_min_ratio: float = 0.5,
    rewrite_min_bytes: int = 64 << 20,
    freeze_min_percent: float = 50.0,
) -> list[Recommendation]:
    """What a person should do next, each with the SQL. None of it is run by the DAG."""
    recommendations: list[Recommendation] = []
    for index in findings.bloated_indexes:
        if (index.bloat_percent or 0) >= reindex_min_percent and (
            index.bloat_bytes or 0
        ) >= reindex_min_bytes:
            reason = (
                f"about {index.bloat_percent:.0f}% of the index is bloat (estimate); "
                "REINDEX CONCURRENTLY rebuilds it without blocking writes"
            )
            recommendations.append(
                _on("reindex", index.schema, index.index, _REINDEX, reason, index.bloat_bytes)
            )
    for index in findings.invalid_indexes:
        if not index.build_in_progress:
            reason = (
                "invalid, left by a failed CREATE INDEX CONCURRENTLY: it costs every write and serves "
                "no read; rebuild it, or DROP INDEX CONCURRENTLY if it is not needed"
            )
            recommendations.append(
                _on("reindex", index.schema, index.index, _REINDEX, reason, index.size_bytes)
            )
    for index in findings.duplicate_indexes:
        kind = "the same keys as" if index.same_keys else "a leading prefix of"
        reason = f"has {kind} {display_name(index.schema, index.covering_index)}, which serves the same reads"
        if index.owning_constraint:  # the index goes with its constraint
            statement = _sql(
                "ALTER TABLE {} DROP CONSTRAINT {};",
                sql.Identifier(index.schema, index.table),
                sql.Identifier(index.owning_constraint),
            )
            recommendations.append(
                Recommendation(
                    "drop_index", display_name(index.schema, index.index), reason, statement, index.size_bytes
                )
            )
        else:
            recommendations.append(
                _on("drop_index", index.schema, index.index, _DROP_INDEX, reason, index.size_bytes)
            )
    for index in findings.unused_indexes:
        since = (
            f"since statistics were last reset, {index.stats_age_s / 86400:.0f} days ago"
            if index.stats_age_s is not None
            else "since its statistics started (never reset)"
        )
        reason = f"never scanned {since}; check replicas too, whose scans are counted there"
        recommendations.append(
            _on("drop_index", index.schema, index.index, _DROP_INDEX, reason, index.size_bytes)
        )
    for row in rows:
        bloat = _latest_bloat(row)
        if (row.bloat_ratio_after or 0) >= rewrite_min_ratio and (bloat or 0) >= rewrite_min_bytes:
            reason = (
                f"about {row.bloat_ratio_after:.0%} of the table is free space after VACUUM (estimate): "
                "plain VACUUM makes it reusable but never returns it to the operating system. Rewrite it "
                "online with pg_repack; a full rewrite inside PostgreSQL would lock the table for its duration"
            )
            recommendations.append(_on("rewrite_table", row.schema, row.table, _REPACK, reason, bloat))
    sizes = {(row.schema, row.table): row.total_bytes_before for row in rows}
    for table in findings.table_xid_ages:
        if table.percent_of_freeze_max_age >= freeze_min_percent:
            reason = (
                f"xid age {table.xid_age:,} is {table.percent_of_freeze_max_age:.0f}% of "
                "autovacuum_freeze_max_age; freeze it in a quiet hour (or run this DAG with mode "
                "vacuum_freeze_analyze) before an anti-wraparound autovacuum starts at peak time"
            )
            size = sizes.get((table.schema, table.table))
            recommendations.append(_on("freeze", table.schema, table.table, _FREEZE, reason, size))
    recommendations.extend(_xmin_recommendation(holder) for holder in findings.xmin_holders)
    # An index both duplicate and unused is recommended once, with the more specific reason (first).
    unique = {(item.kind, item.target): item for item in reversed(recommendations)}
    return [item for item in recommendations if unique[(item.kind, item.target)] is item]


def _on(kind: str, schema: str, name: str, template: str, reason: str, size: int | None) -> Recommendation:
    """A recommendation whose SQL acts on one schema-qualified relation."""
    return Recommendation(
        kind, display_name(schema, name), reason, _sql(template, sql.Identifier(schema, name)), size
    )


def _xmin_recommendation(holder: XminHolder) -> Recommendation:
    held = f"for {holder.duration_s:,.0f} s" if holder.duration_s is not None else ""
    reason = (
        f"holds back the xmin horizon by {holder.xmin_age or 0:,} transactions {held}: VACUUM cannot "
        "remove any row that died after it started; confirm with its owner first"
    )
    if holder.kind == "replication_slot":
        statement = _sql("SELECT pg_drop_replication_slot({});", sql.Literal(holder.name))
    elif holder.kind == "prepared_transaction":
        statement = _sql("ROLLBACK PREPARED {};", sql.Literal(holder.name))
    else:
        statement = _sql("SELECT pg_terminate_backend({});", sql.Literal(holder.pid))
    return Recommendation("end_transaction", f"{holder.kind} {holder.name or holder.pid}", reason, statement)


def _sql(template: str, *parts: sql.Composable) -> str:
    return sql.SQL(template).format(*parts).as_string()  # type: ignore[arg-type] - constant templates


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


def _reusable_bytes(old: TableSnapshot, new: TableSnapshot | None) -> int | None:
    """Heap bytes times the share of its row versions that VACUUM removed."""
    if new is None or old.heap_bytes is None or not old.live_tuples + old.dead_tuples:
        return None
    removed = max(old.dead_tuples - new.dead_tuples, 0)
    return round(old.heap_bytes * removed / (old.live_tuples + old.dead_tuples))


def _latest(*moments: datetime | None) -> datetime | None:
    return max((moment for moment in moments if moment is not None), default=None)


def _latest_bloat(row: TableRow) -> int | None:
    return row.bloat_bytes_after if row.bloat_bytes_after is not None else row.bloat_bytes_before


# --- Rendering and storing ----------------------------------------------------------------------


def charts(report: MaintenanceReport) -> dict[str, bytes]:
    """PNG trend charts (keyed like CHARTS) of the summed bloat and dead tuples, before and after each run."""
    # One x per run, so that each run's "before" and "after" stand one above the other.
    run_times: dict[str, datetime] = {}
    for point in report.history:
        run_times[point.run_id] = min(run_times.get(point.run_id, point.collected_at), point.collected_at)

    def series(
        value: Callable[[HistoryPoint], int | None], scale: float
    ) -> dict[str, list[tuple[Any, float | None]]]:
        lines: dict[str, list[tuple[Any, float | None]]] = {}
        for point in report.history:
            measured = value(point)
            lines.setdefault(f"{point.phase} maintenance", []).append(
                (run_times[point.run_id], None if measured is None else measured / scale)
            )
        return lines

    weeks = f"last {HISTORY_WEEKS} weeks, tables in scope"
    return {
        "bloat": line_chart_png(
            series(lambda p: p.bloat_bytes, 1 << 20), title=f"Estimated table bloat ({weeks})", ylabel="MiB"
        ),
        "dead_tuples": line_chart_png(
            series(lambda p: p.dead_tuples, 1), title=f"Dead tuples ({weeks})", ylabel="rows"
        ),
    }


def render_artifacts(report: MaintenanceReport) -> dict[str, bytes]:
    """Every file of the report: standalone HTML (charts as data URIs), JSON, CSV and the chart PNGs."""
    pngs = charts(report)
    html = render(
        "maintenance_report.html",
        report=report,
        name=display_name,
        charts={name: data_uri_png(png) for name, png in pngs.items()},
        generated_at=f"{report.generated_at:%Y-%m-%d %H:%M} UTC",
    )
    recommendations = [dataclasses.asdict(item) for item in report.recommendations]
    return {
        "report.html": html.encode(),
        "report.json": to_json(dataclasses.asdict(report)).encode(),
        "tables.csv": to_csv([dataclasses.asdict(row) for row in report.tables]).encode(),
        "recommendations.csv": to_csv(recommendations).encode(),
        **{CHARTS[name]: png for name, png in pngs.items()},
    }


def metric_rows(
    dag_id: str, run_id: str, snapshot: Snapshot, report: MaintenanceReport
) -> list[dict[str, Any]]:
    """One `table_metrics` row per table of a snapshot, with the run's outcome for the planned ones."""
    outcomes = {(row.schema, row.table): row for row in report.tables}
    rows = []
    for table in snapshot.tables:
        row = outcomes.get((table.schema, table.table))
        rows.append(
            {
                "dag_id": dag_id,
                "run_id": run_id,
                "phase": snapshot.phase,
                "schema_name": table.schema,
                "table_name": table.table,
                "collected_at": snapshot.collected_at,
                **_metrics(table),
                "outcome": row.outcome if row else None,
                "duration_s": row.duration_s if row else None,
            }
        )
    return rows


def _metrics(table: TableSnapshot) -> dict[str, Any]:
    return {column: getattr(table, column) for column in METRIC_COLUMNS}


def store_report(
    report: MaintenanceReport,
    before: Snapshot,
    after: Snapshot | None,
    *,
    started_at: datetime,
    settings: Settings,
) -> str:
    """Write the artifacts under the run's folder, then upsert the history rows and the run's row.

    Both are keyed by the DAG run, so a rerun replaces what an earlier attempt stored. Returns the
    folder's URI.
    """
    folder = run_artifacts_dir(settings.storage.artifacts_uri(), report.dag_id, report.run_id)
    for name, content in render_artifacts(report).items():
        (folder / name).write_bytes(content)
    schema = settings.storage.results_schema
    with collector_session(RESULTS_CONN_ID, settings, read_only=False) as results:
        ensure_results_schema(results, schema)
        metrics = [
            row
            for snapshot in (before, after)
            if snapshot
            for row in metric_rows(report.dag_id, report.run_id, snapshot, report)
        ]
        replace_run_rows(
            results,
            schema,
            "table_metrics",
            metrics,
            dag_id=report.dag_id,
            run_id=report.run_id,
            key=METRICS_KEY,
        )
        upsert_rows(
            results,
            schema,
            "runs",
            [
                {
                    "dag_id": report.dag_id,
                    "run_id": report.run_id,
                    "kind": "maintenance",
                    "started_at": started_at,
                    "finished_at": datetime.now(UTC),
                    "status": report.status,
                    "summary": Jsonb({**dataclasses.asdict(report.totals), "detail": report.status_detail}),
                    "artifacts_uri": str(folder),
                }
            ],
            key=("dag_id", "run_id"),
        )
    return str(folder)


def email_subject(report: MaintenanceReport) -> str:
    totals = report.totals
    return (
        f"{report.dag_id} on {report.database}: {report.status} — {totals.done} of {totals.planned} tables "
        f"done, {totals.dead_tuples_removed:,} dead tuples removed, {len(report.recommendations)} recommendations"
    )


def email_report(report: MaintenanceReport, artifacts_uri: str) -> list[str]:
    """Send the summary with the stored report attached, read back from storage: the email carries
    exactly what was stored. Returns the attached file names."""
    from airflow.sdk import ObjectStoragePath

    folder = ObjectStoragePath(artifacts_uri)
    with tempfile.TemporaryDirectory(prefix="tutormax_maintenance_") as scratch:
        attachments = []
        for name in EMAIL_ATTACHMENTS:
            local = Path(scratch) / name
            local.write_bytes((folder / name).read_bytes())
            attachments.append(local)
        send_email(
            subject=email_subject(report),
            html=render(
                "maintenance_email.html",
                report=report,
                name=display_name,
                artifacts_uri=redact(artifacts_uri),
                charts={name: f"cid:{file}" for name, file in CHARTS.items()},
                email_tables=EMAIL_TABLES,
            ),
            attachments=attachments,
        )
    return list(EMAIL_ATTACHMENTS)


# --- Task entry points (JSON in, JSON out) --------------------------------------------------------


def report_step(
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


def store_step(
    report: Mapping[str, Any],
    before: Mapping[str, Any],
    after: Mapping[str, Any] | None,
    *,
    started_at: datetime,
) -> str:
    folder = store_report(
        from_jsonable(MaintenanceReport, report),
        from_jsonable(Snapshot, before),
        from_jsonable(Snapshot, after) if after else None,
        started_at=started_at,
        settings=load_settings(with_variable=True),
    )
    log.info("report stored under %s; history upserted", redact(folder))
    return folder


def notify_step(report: Mapping[str, Any], artifacts_uri: str) -> list[str]:
    """Email the stored report, unless `notify` says not to (the task is then skipped, with the reason)."""
    from airflow.sdk.exceptions import AirflowSkipException

    loaded = from_jsonable(MaintenanceReport, report)
    if loaded.request.notify == "never":
        raise AirflowSkipException("notify is 'never'")
    if loaded.request.notify == "on_findings" and not loaded.has_findings:
        raise AirflowSkipException("notify is 'on_findings' and this run found nothing to act on")
    return email_report(loaded, artifacts_uri)
