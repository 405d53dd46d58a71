"""Step 6: render the report (HTML, CSV, JSON, charts), store it per DAG run, upsert the history."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from psycopg.types.json import Jsonb

from tutormax_ops.core.config import Settings, load_settings
from tutormax_ops.core.conn_ids import RESULTS_CONN_ID
from tutormax_ops.core.db import collector_session
from tutormax_ops.core.notify import redact
from tutormax_ops.core.reports import data_uri_png, line_chart_png, render, to_csv, to_json
from tutormax_ops.core.storage import ensure_results_schema, replace_run_rows, run_artifacts_dir, upsert_rows
from tutormax_ops.maintenance.common import display_name, folder_of, load_step
from tutormax_ops.maintenance.evidence import record_observation
from tutormax_ops.maintenance.report import HISTORY_WEEKS, HistoryPoint, MaintenanceReport
from tutormax_ops.maintenance.snapshot import Snapshot, TableSnapshot

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
    folder = run_artifacts_dir(settings.storage.artifacts_uri(), report.dag_id, report.run_id, reset=False)
    for name, content in render_artifacts(report).items():
        (folder / name).write_bytes(content)
    schema = settings.storage.results_schema
    with collector_session(RESULTS_CONN_ID, settings, read_only=False) as results:
        ensure_results_schema(results, schema)
        if before.origin is not None:
            record_observation(results, schema, before.origin, dag_id=report.dag_id)
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
                    "summary": Jsonb(
                        {
                            **dataclasses.asdict(report.totals),
                            "detail": report.status_detail,
                            "failure": report.failure,
                            "incomplete": list(report.incomplete),
                        }
                    ),
                    "artifacts_uri": str(folder),
                }
            ],
            key=("dag_id", "run_id"),
        )
    return str(folder)


def store(report: Mapping[str, Any], *, started_at: datetime) -> dict[str, Any]:
    """Render the saved report into the run's folder and upsert the history, before anyone is told."""
    folder = folder_of(report)
    built = load_step(MaintenanceReport, folder, "report")
    stored = store_report(
        built,
        load_step(Snapshot, folder, "snapshot_before"),
        load_step(Snapshot, folder, "snapshot_after"),
        started_at=started_at,
        settings=load_settings(with_variable=True),
    )
    log.info("report stored under %s; history upserted", redact(stored))
    return {"folder": stored, "report": f"{stored}/report.html"}
