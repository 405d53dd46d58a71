"""Steps 1 and 4: a snapshot of the tables in scope (size, tuples, bloat estimate, maintenance times),
with the database-wide figures, written to the run's folder.

A run that names tables snapshots only those (a named partitioned table: its partitions too), so a
two-table run over a 30,000-table catalog stays small.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

import psycopg

from tutormax_ops.collectors.postgres.bloat import table_bloat
from tutormax_ops.collectors.postgres.indexes import StatsOrigin, stats_origin
from tutormax_ops.collectors.postgres.tables import by_size, table_stats
from tutormax_ops.core.config import load_settings
from tutormax_ops.core.conn_ids import DB_CONN_ID
from tutormax_ops.core.db import collector_session, load_sql
from tutormax_ops.maintenance.common import (
    MaintenanceParamError,
    Request,
    TableRef,
    folder_of,
    from_jsonable,
    load_step,
    recording_failure,
    request_from_params,
    resolve_tables,
    run_folder,
    save_step,
)

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class TableSnapshot:
    """One table's size, tuples, bloat estimate and maintenance history at one moment."""

    schema: str
    table: str
    locked: bool  # another session held or queued ACCESS EXCLUSIVE: sizes and bloat were not read
    total_bytes: int | None  # sizes are None while another session holds ACCESS EXCLUSIVE on the table
    table_bytes: int | None  # pg_table_size: heap, TOAST and the free-space and visibility maps
    heap_bytes: int | None
    index_bytes: int | None
    toast_bytes: int | None
    live_tuples: int
    dead_tuples: int
    dead_ratio: float | None
    mods_since_analyze: int
    bloat_bytes: int | None
    bloat_ratio: float | None
    xid_age: int | None
    last_vacuum: datetime | None
    last_autovacuum: datetime | None
    last_analyze: datetime | None
    last_autoanalyze: datetime | None

    @property
    def ref(self) -> TableRef:
        return TableRef(self.schema, self.table)


@dataclass(frozen=True)
class PartitionLeaf:
    parent_schema: str
    parent_table: str
    schema: str
    table: str

    @property
    def parent(self) -> TableRef:
        return TableRef(self.parent_schema, self.parent_table)

    @property
    def ref(self) -> TableRef:
        return TableRef(self.schema, self.table)


@dataclass(frozen=True)
class Snapshot:
    phase: Literal["before", "after"]
    collected_at: datetime
    tables: tuple[TableSnapshot, ...]
    partitions: tuple[PartitionLeaf, ...]  # leaves under the partitioned tables in `tables`
    database_bytes: int | None
    database_xid_age: int | None
    tables_in_scope: int  # every table of the schemas, also those a run naming tables left out
    # Who the database is and since when its counters count: the age of "never scanned" evidence.
    origin: StatsOrigin | None = None

    @property
    def partitioned(self) -> frozenset[TableRef]:
        return frozenset(leaf.parent for leaf in self.partitions)


def take_snapshot(
    conn: psycopg.Connection,
    schemas: Sequence[str],
    phase: Literal["before", "after"],
    *,
    only: frozenset[TableRef] | None = None,
    second: psycopg.Connection | None = None,
) -> Snapshot:
    """Table statistics joined with the catalog bloat estimate, for every user table of `schemas`
    (or only the tables in `only`, with the leaves of any partitioned table among them).

    With a `second` session, the database figures and half of the tables' statistics are read on it
    while `conn` reads the other half and the bloat estimate: on thousands of tables each is a
    server-side walk of the catalog (the sizes open every relation), and the two overlap."""
    if second is None:
        return _snapshot(conn, conn, schemas, phase, only)
    with ThreadPoolExecutor(max_workers=1) as pool:
        # `second` is used by the pool's one thread only, `conn` by this one only.
        return _snapshot(conn, second, schemas, phase, only, pool)


def _snapshot(
    conn: psycopg.Connection,
    second: psycopg.Connection,
    schemas: Sequence[str],
    phase: Literal["before", "after"],
    only: frozenset[TableRef] | None,
    pool: ThreadPoolExecutor | None = None,
) -> Snapshot:
    def on_second(read: Callable[[], T]) -> Callable[[], T]:
        if pool is None:
            return read
        return pool.submit(read).result

    collected_at = datetime.now(UTC)
    figures = on_second(lambda: second.execute(load_sql("maintenance/database_figures.sql")).fetchone())
    split = pool is not None  # each session measures half of the tables; one session alone, all
    second_half = on_second(lambda: table_stats(second, schemas=schemas, share=(1, 2)) if split else [])
    leaves = [
        PartitionLeaf(*row)
        for row in conn.execute(load_sql("maintenance/partitions.sql"), {"schemas": list(schemas)}).fetchall()
    ]
    if only is not None:
        only = only | {leaf.ref for leaf in leaves if leaf.parent in only}
        leaves = [leaf for leaf in leaves if leaf.parent in only]
    first_half = table_stats(conn, schemas=schemas, share=(0, 2) if split else None)
    # On `conn`, as the database figures are on `second`: the two sessions take about as long.
    bloat = {(row.schema, row.table): row for row in table_bloat(conn, schemas=schemas)}
    every = by_size(first_half + second_half())
    database_bytes, database_xid_age = figures()
    tables = []
    for stats in every:
        if only is not None and TableRef(stats.schema, stats.table) not in only:
            continue
        estimate = bloat.get((stats.schema, stats.table))
        estimable = estimate is not None and estimate.estimable
        tables.append(
            TableSnapshot(
                schema=stats.schema,
                table=stats.table,
                locked=stats.locked,
                total_bytes=stats.total_bytes,
                table_bytes=stats.table_bytes,
                heap_bytes=stats.heap_bytes,
                index_bytes=stats.index_bytes,
                toast_bytes=stats.toast_bytes,
                live_tuples=stats.live_tuples,
                dead_tuples=stats.dead_tuples,
                dead_ratio=stats.dead_ratio,
                mods_since_analyze=stats.mods_since_analyze,
                bloat_bytes=estimate.bloat_bytes if estimable else None,
                bloat_ratio=estimate.bloat_percent / 100 if estimable else None,
                xid_age=stats.xid_age,
                last_vacuum=stats.last_vacuum,
                last_autovacuum=stats.last_autovacuum,
                last_analyze=stats.last_analyze,
                last_autoanalyze=stats.last_autoanalyze,
            )
        )
    return Snapshot(
        phase,
        collected_at,
        tuple(tables),
        tuple(leaves),
        database_bytes,
        database_xid_age,
        len(every),
        stats_origin(conn),
    )


def _named_tables(conn: psycopg.Connection, request: Request) -> frozenset[TableRef] | None:
    """The tables the run names, as far as they resolve; the plan step refuses the others by name."""
    if not request.tables:
        return None
    try:
        named, _ = resolve_tables(conn, request.tables, request.schemas, field="tables", strict=False)
    except MaintenanceParamError:
        return None  # a malformed name: the plan fails on it, naming the field
    return frozenset(named)


def summary(snapshot: Snapshot, path: str, folder: str) -> dict[str, Any]:
    """What travels through XCom: where the snapshot is, and a few figures."""
    return {
        "folder": folder,
        "path": path,
        "phase": snapshot.phase,
        "tables": len(snapshot.tables),
        "tables_in_scope": snapshot.tables_in_scope,
        "database_bytes": snapshot.database_bytes,
    }


def snapshot_before(params: Mapping[str, Any], *, dag_id: str, run_id: str) -> dict[str, Any]:
    """Empty the run's folder (a rerun starts clean), snapshot the scope, and save it there."""
    settings = load_settings(with_variable=True)
    request = request_from_params(params, settings.maintenance)
    folder = run_folder(settings, dag_id, run_id, reset=True)
    with (
        recording_failure(folder, "snapshot_before"),
        collector_session(DB_CONN_ID, settings) as conn,
        collector_session(DB_CONN_ID, settings) as second,
    ):
        snapshot = take_snapshot(
            conn, request.schemas, "before", only=_named_tables(conn, request), second=second
        )
    log.info("snapshot before: %d of %d tables in scope", len(snapshot.tables), snapshot.tables_in_scope)
    return summary(snapshot, save_step(folder, "snapshot_before", snapshot), str(folder))


def snapshot_after(plan: Mapping[str, Any]) -> dict[str, Any]:
    """The same scope again after maintenance; nothing on a dry run (nothing changed)."""
    folder = folder_of(plan)
    if plan["dry_run"]:
        return {"folder": str(folder), "path": None, "reason": "dry run: nothing changed"}
    settings = load_settings(with_variable=True)
    request = from_jsonable(Request, plan["request"])
    # The same tables as before when the run names some; else the whole scope again, and the before
    # snapshot (megabytes at 3,000 tables) need not be read.
    before = load_step(Snapshot, folder, "snapshot_before") if request.tables else None
    only = frozenset(table.ref for table in before.tables) if before else None
    with (
        recording_failure(folder, "snapshot_after"),
        collector_session(DB_CONN_ID, settings) as conn,
        collector_session(DB_CONN_ID, settings) as second,
    ):
        snapshot = take_snapshot(conn, request.schemas, "after", only=only, second=second)
    return summary(snapshot, save_step(folder, "snapshot_after", snapshot), str(folder))
