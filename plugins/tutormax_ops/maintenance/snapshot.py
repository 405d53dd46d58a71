"""Step 1 and 4: a snapshot of every table in scope (size, tuples, bloat estimate, maintenance times)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import psycopg

from tutormax_ops.collectors.postgres.bloat import table_bloat
from tutormax_ops.collectors.postgres.tables import table_stats
from tutormax_ops.config import load_settings
from tutormax_ops.conn_ids import DB_CONN_ID
from tutormax_ops.db import collector_session
from tutormax_ops.maintenance.common import Request, TableRef, from_jsonable, request_from_params, to_jsonable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TableSnapshot:
    """One table's size, tuples, bloat estimate and maintenance history at one moment."""

    schema: str
    table: str
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
class Snapshot:
    phase: Literal["before", "after"]
    collected_at: datetime
    tables: tuple[TableSnapshot, ...]


def take_snapshot(
    conn: psycopg.Connection, schemas: Sequence[str], phase: Literal["before", "after"]
) -> Snapshot:
    """Table statistics joined with the catalog bloat estimate, for every user table of `schemas`."""
    collected_at = datetime.now(UTC)
    bloat = {(row.schema, row.table): row for row in table_bloat(conn, schemas=schemas)}
    tables = []
    for stats in table_stats(conn, schemas=schemas):
        estimate = bloat.get((stats.schema, stats.table))
        estimable = estimate is not None and estimate.estimable
        tables.append(
            TableSnapshot(
                schema=stats.schema,
                table=stats.table,
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
    return Snapshot(phase, collected_at, tuple(tables))


def snapshot_before(params: Mapping[str, Any]) -> dict[str, Any]:
    settings = load_settings(with_variable=True)
    request = request_from_params(params, settings.maintenance)
    with collector_session(DB_CONN_ID, settings) as conn:
        return to_jsonable(take_snapshot(conn, request.schemas, "before"))


def snapshot_after(plan: Mapping[str, Any]) -> dict[str, Any] | None:
    """None on a dry run: nothing changed, so there is no "after"."""
    request = from_jsonable(Request, plan["request"])
    if request.dry_run:
        return None
    settings = load_settings(with_variable=True)
    with collector_session(DB_CONN_ID, settings) as conn:
        return to_jsonable(take_snapshot(conn, request.schemas, "after"))
