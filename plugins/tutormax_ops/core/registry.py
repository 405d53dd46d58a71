"""The run registry: every DAG writes one row per run to `runs` in the results database (dag, run
id, kind, run type, start, end, status, a one-line headline, details, where its files and its report
are). The capability tables (`loadtest_runs`, `cache_warm_runs`, `table_metrics`) hang off it by a
foreign key, so each capability writes its registry row first, in the same transaction.

Whoever asks "what was the last run of X" (the runbooks, the checklist, the Performance page) asks
the registry by kind, never a capability table: before it, warming wrote only `cache_warm_runs` and
the health runbook, reading `runs`, said no warming run was recorded.

A rerun of the same DAG run upserts its row: one row per (dag_id, run_id), whatever the attempts.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from tutormax_ops.core.db import load_sql

if TYPE_CHECKING:
    import psycopg

    from tutormax_ops.core.config import Settings

Kind = Literal["load_test", "cache_warm", "cache_clear", "maintenance", "migration", "health", "connectivity"]
# The DAG that fills each kind: an empty panel or a missing run names it.
DAG_OF_KIND: dict[str, str] = {
    "load_test": "tutormax_load_test",
    "cache_warm": "tutormax_cache_warming",
    "cache_clear": "tutormax_cache_clear",
    "maintenance": "tutormax_db_maintenance",
    "migration": "tutormax_migrations",
    "health": "tutormax_perf_health",
    "connectivity": "tutormax_smoke_connectivity",
}
# The capability tables tied to the registry, each by its named foreign key; the SQL that ties one
# (its older rows registered first) is results/register_<table>.sql.
CAPABILITY_TABLES = {
    "loadtest_runs": "loadtest_runs_in_registry",
    "cache_warm_runs": "cache_warm_runs_in_registry",
    "table_metrics": "table_metrics_in_registry",
}
log = logging.getLogger(__name__)
HEADLINE_CHARS = 300  # one line on the page and in a runbook


@dataclass(frozen=True)
class RunRecord:
    dag_id: str
    run_id: str
    kind: Kind
    started_at: datetime
    status: str  # the capability's own word: success, failed, pass, fail, invalid, warning...
    headline: str
    run_type: str | None = None  # scheduled, manual, asset_triggered (core.runs.run_type_of)
    finished_at: datetime | None = None  # None: now
    details: Mapping[str, Any] = field(default_factory=dict)
    artifacts_uri: str | None = None
    report_uri: str | None = None


def record_of(dag_run: Any, **fields: Any) -> RunRecord:
    """A record of `dag_run` (the task context's): its ids, run type and start; `fields` the rest."""
    from tutormax_ops.core.runs import run_type_of

    return RunRecord(
        dag_id=dag_run.dag_id,
        run_id=dag_run.run_id,
        run_type=run_type_of(dag_run.run_type),
        started_at=dag_run.start_date or datetime.now(UTC),
        **fields,
    )


def schema_is_current(conn: psycopg.Connection, schema: str) -> bool:
    """Whether the history schema has its newest table and every capability table is tied to the
    registry: then `ensure_results_schema` has nothing to do."""
    from psycopg import sql

    newest = sql.Identifier(schema, "loadtest_evidence").as_string(conn)
    if conn.execute("SELECT to_regclass(%s) IS NOT NULL", (newest,)).fetchone()[0] is not True:
        return False
    tied = conn.execute(
        load_sql("results/registered_tables.sql"),
        {"schema": schema, "constraints": list(CAPABILITY_TABLES.values())},
    ).fetchall()
    return {row[0] for row in tied} == set(CAPABILITY_TABLES)


def tie_capability_tables(conn: psycopg.Connection, schema: str) -> None:
    """Tie each capability table not yet tied to the registry: register its older runs, add the key.
    Runs inside `ensure_results_schema`'s transaction, which holds the schema lock."""
    tied = {
        row[0]
        for row in conn.execute(
            load_sql("results/registered_tables.sql"),
            {"schema": schema, "constraints": list(CAPABILITY_TABLES.values())},
        )
    }
    for table, constraint in CAPABILITY_TABLES.items():
        if table not in tied:
            conn.execute(load_sql(f"results/register_{table}.sql", schema=schema, constraint=constraint))


def record_run(conn: psycopg.Connection, schema: str, record: RunRecord) -> None:
    """Upsert the run's registry row (before any capability row: they reference it)."""
    from psycopg.types.json import Jsonb

    from tutormax_ops.core.notify import redact
    from tutormax_ops.core.storage import upsert_rows

    headline = " ".join(redact(record.headline).split())
    row = {
        "dag_id": record.dag_id,
        "run_id": record.run_id,
        "kind": record.kind,
        "run_type": record.run_type,
        "started_at": record.started_at,
        "finished_at": record.finished_at or datetime.now(UTC),
        "status": record.status,
        "headline": headline[: HEADLINE_CHARS - 1] + "…" if len(headline) > HEADLINE_CHARS else headline,
        "summary": Jsonb(dict(record.details)),
        "artifacts_uri": record.artifacts_uri,
        "report_uri": record.report_uri,
    }
    upsert_rows(conn, schema, "runs", [row], key=("dag_id", "run_id"))


def store_run(settings: Settings, record: RunRecord, *, best_effort: bool = False) -> bool:
    """`record_run` in its own session, for DAGs that store nothing else. `best_effort`: a results
    database that cannot be reached is logged, not raised (the connectivity check reports it itself)."""
    import psycopg

    from tutormax_ops.core.storage import results_db

    try:
        with results_db(settings) as conn:
            record_run(conn, settings.storage.results_schema, record)
    except psycopg.OperationalError as error:
        if not best_effort:
            raise
        log.warning("run %s not recorded in the run registry: %s", record.run_id, str(error).splitlines()[0])
        return False
    return True


def last_run(conn: psycopg.Connection, schema: str, kind: Kind) -> dict[str, Any] | None:
    """The newest registry row of `kind`, or None."""
    from psycopg.rows import dict_row

    with conn.cursor(row_factory=dict_row) as cursor:
        cursor.execute(load_sql("tutormax_perf_health/last_run_of.sql", schema=schema), {"kind": kind})
        return cursor.fetchone()


def describe_last_run(found: Mapping[str, Any] | None, kind: Kind) -> str:
    """One line for a runbook or the checklist: the run, its verdict and when, or which DAG to run."""
    if found is None:
        return f"no {kind.replace('_', ' ')} run is recorded in the run registry (run {DAG_OF_KIND[kind]})"
    where = f"; report {found['report_uri']}" if found.get("report_uri") else ""
    return (
        f"{found['dag_id']} {found['run_id']}: {found['status']} at {found['started_at']:%Y-%m-%d %H:%M} UTC"
        f" — {found['headline'] or 'no headline'}{where}"
    )
