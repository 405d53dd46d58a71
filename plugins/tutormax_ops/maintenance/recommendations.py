"""What a person should do next, with the SQL to run; the DAG never runs any of it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from psycopg import sql

from tutormax_ops.collectors.postgres.health import XminHolder
from tutormax_ops.maintenance.common import display_name
from tutormax_ops.maintenance.findings import Findings
from tutormax_ops.maintenance.tables import TableRow, latest_bloat


@dataclass(frozen=True)
class Recommendation:
    kind: str
    target: str
    reason: str
    sql: str
    size_bytes: int | None = None


_REINDEX = "REINDEX INDEX CONCURRENTLY {};"
_DROP_INDEX = "DROP INDEX CONCURRENTLY {};"
# pg_repack rewrites a table online (brief locks only); it is a client program, so this is its command.
_REPACK = "-- pg_repack --table={}  (run from a shell; needs the pg_repack extension)"
_FREEZE = "VACUUM (FREEZE, ANALYZE) {};"


def recommend(
    findings: Findings,
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
        bloat = latest_bloat(row)
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
