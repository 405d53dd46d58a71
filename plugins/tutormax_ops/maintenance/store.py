"""Step 6: render the report (HTML, CSV, JSON, charts), store it per DAG run, upsert the history."""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import psycopg

from tutormax_ops.core.config import Settings, load_settings
from tutormax_ops.core.conn_ids import RESULTS_CONN_ID
from tutormax_ops.core.db import collector_session
from tutormax_ops.core.notify import redact
from tutormax_ops.core.registry import RunRecord, record_run
from tutormax_ops.core.reports import data_uri_png, line_chart_png, render, to_csv
from tutormax_ops.core.storage import ensure_results_schema, replace_run_rows, run_artifacts_dir
from tutormax_ops.maintenance.common import (
    display_name,
    error_line,
    folder_of,
    from_jsonable,
    load_step,
    load_step_data,
    quote_ident,
    recording_failure,
    save_step,
    step_path,
    to_jsonable,
)
from tutormax_ops.maintenance.evidence import record_observation
from tutormax_ops.maintenance.report import HISTORY_WEEKS, HistoryPoint, MaintenanceReport
from tutormax_ops.maintenance.snapshot import Snapshot, TableSnapshot

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

REPORT_TABLES = 300  # planned tables listed in report.html; all of them are in tables.csv
REPORT_FILE = "report.html"  # the run's report: the registry, the email and the page link it
CHARTS = {"bloat": "bloat.png", "dead_tuples": "dead_tuples.png"}
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
log = logging.getLogger(__name__)


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


def render_artifacts(report: MaintenanceReport, as_json: dict[str, Any] | None = None) -> dict[str, bytes]:
    """Every file of the report: standalone HTML (charts as data URIs), JSON, CSV and the chart PNGs.
    `as_json`: the report in `to_jsonable` form when the caller has it (its saved step file)."""
    pngs = charts(report)
    html = render(
        "maintenance_report.html",
        report=report,
        name=display_name,
        ident=quote_ident,
        report_tables=REPORT_TABLES,
        charts={name: data_uri_png(png) for name, png in pngs.items()},
        generated_at=f"{report.generated_at:%Y-%m-%d %H:%M} UTC",
    )
    if as_json is None:  # once: its tables and recommendations are the CSV files too
        as_json = to_jsonable(report)
    return {
        REPORT_FILE: html.encode(),
        # Compact: at 3,000 tables the indented form was twice the size.
        "report.json": json.dumps(as_json, separators=(",", ":")).encode(),
        "tables.csv": to_csv(as_json["tables"]).encode(),
        "recommendations.csv": to_csv(as_json["recommendations"]).encode(),
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


HISTORY_PENDING = "history_pending"  # the step file of history a run could not store yet
STORE_ATTEMPTS = 3  # a blip of tutormax_results is retried here; a longer outage, by the next run
STORE_RETRY_S = 2.0


@dataclass(frozen=True)
class PendingHistory:
    """The run's history rows are not in tutormax_results yet: the next run stores them from its files."""

    started_at: datetime
    cause: str


def write_artifacts(
    report: MaintenanceReport, settings: Settings, as_json: dict[str, Any] | None = None
) -> ObjectStoragePath:
    """The report's files under the run's folder: they need no database."""
    folder = run_artifacts_dir(settings.storage.artifacts_uri(), report.dag_id, report.run_id, reset=False)
    for name, content in render_artifacts(report, as_json).items():
        (folder / name).write_bytes(content)
    return folder


def store_history(
    results: psycopg.Connection,
    schema: str,
    report: MaintenanceReport,
    before: Snapshot,
    after: Snapshot | None,
    *,
    started_at: datetime,
    artifacts_uri: str,
) -> None:
    """Upsert the run's table metrics and its `runs` row, and record the database identity it observed.

    Keyed by the DAG run, so a rerun (or a catch-up) replaces what an earlier attempt stored.
    """
    ensure_results_schema(results, schema)
    if before.origin is not None:
        record_observation(results, schema, before.origin, dag_id=report.dag_id)
    metrics = [
        row
        for snapshot in (before, after)
        if snapshot
        for row in metric_rows(report.dag_id, report.run_id, snapshot, report)
    ]
    with results.transaction():
        record_run(
            results,
            schema,
            RunRecord(
                dag_id=report.dag_id,
                run_id=report.run_id,
                kind="maintenance",
                started_at=started_at,
                status=report.status,
                headline=report.headline(),
                details={
                    **dataclasses.asdict(report.totals),
                    "detail": report.status_detail,
                    "failure": report.failure,
                    "incomplete": list(report.incomplete),
                },
                artifacts_uri=artifacts_uri,
                report_uri=f"{artifacts_uri}/{REPORT_FILE}",
            ),
        )
        replace_run_rows(
            results,
            schema,
            "table_metrics",
            metrics,
            dag_id=report.dag_id,
            run_id=report.run_id,
            key=METRICS_KEY,
        )


def store_saved_run(
    results: psycopg.Connection,
    schema: str,
    folder: ObjectStoragePath,
    started_at: datetime,
    report: MaintenanceReport | None = None,
) -> None:
    """Store a run's history from the files its steps saved (the report too, unless given)."""
    store_history(
        results,
        schema,
        report or load_step(MaintenanceReport, folder, "report"),
        load_step(Snapshot, folder, "snapshot_before"),
        load_step(Snapshot, folder, "snapshot_after"),
        started_at=started_at,
        artifacts_uri=str(folder),
    )


def catch_up(results: psycopg.Connection, schema: str, folder: ObjectStoragePath) -> list[str]:
    """Store the history of earlier runs of this DAG whose store could not reach tutormax_results;
    returns their folders."""
    caught_up = []
    for other in folder.parent.iterdir():
        pending = load_step(PendingHistory, other, HISTORY_PENDING) if other != folder else None
        if pending is not None and load_step(MaintenanceReport, other, "report") is not None:
            store_saved_run(results, schema, other, pending.started_at)
            step_path(other, HISTORY_PENDING).unlink()
            caught_up.append(str(other))
    return caught_up


def _store_history_retrying(
    folder: ObjectStoragePath, settings: Settings, started_at: datetime, report: MaintenanceReport
) -> tuple[list[str], str | None]:
    """Upsert the run's history and catch up earlier runs', retrying a blip of tutormax_results;
    returns (the folders caught up, None), or ([], the cause) once the history is marked pending."""
    schema = settings.storage.results_schema
    cause = ""
    for attempt in range(1, STORE_ATTEMPTS + 1):
        if attempt > 1:
            time.sleep(STORE_RETRY_S * (attempt - 1))
        try:
            with collector_session(RESULTS_CONN_ID, settings, read_only=False) as results:
                store_saved_run(results, schema, folder, started_at, report)
                return catch_up(results, schema, folder), None
        except psycopg.OperationalError as error:
            cause = f"{RESULTS_CONN_ID} unreachable after {attempt} attempts: {error_line(error)}"
    save_step(folder, HISTORY_PENDING, PendingHistory(started_at, cause))
    return [], cause


def store(report: Mapping[str, Any], *, started_at: datetime) -> dict[str, Any]:
    """Write the report's files and upsert the history (and any an earlier run left pending), before
    anyone is told. tutormax_results unreachable: the files stay, the history is marked pending for the
    next run, and the step goes on so that the report is still sent (the outcome then fails the run)."""
    folder = folder_of(report)
    settings = load_settings(with_variable=True)
    with recording_failure(folder, "store"):
        # The saved step file is report.json's content already: decoded once, not encoded again.
        saved = load_step_data(folder, "report")
        built = from_jsonable(MaintenanceReport, saved)
        with ThreadPoolExecutor(max_workers=1) as pool:
            # The history rows travel on their own session (its thread only) while this thread renders
            # the files, which need no database: the charts' CPU time fills the wait for the server.
            history = pool.submit(_store_history_retrying, folder, settings, started_at, built)
            stored = str(write_artifacts(built, settings, saved))
            caught_up, cause = history.result()
    if cause is not None:
        log.warning("report files stored under %s; history pending: %s", redact(stored), cause)
        return {"folder": stored, "report": f"{stored}/{REPORT_FILE}", "history": f"pending: {cause}"}
    pending = step_path(folder, HISTORY_PENDING)
    if pending.exists():  # a rerun stored what an earlier attempt could not
        pending.unlink()
    log.info(
        "report stored under %s; history upserted%s",
        redact(stored),
        f"; caught up {len(caught_up)} earlier runs' history" if caught_up else "",
    )
    return {"folder": stored, "report": f"{stored}/{REPORT_FILE}", "history": "stored"}
