"""What a person should do next, with the SQL to run; the DAG never runs any of it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from psycopg import sql

from tutormax_ops.collectors.postgres.health import XminHolder
from tutormax_ops.collectors.postgres.indexes import DuplicateIndex, UnusedIndex
from tutormax_ops.core.config import Maintenance
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
    evidence: str = ""  # the figures behind it: scan age, bloat estimate and its method, size
    warning: str | None = None  # shown beside SQL that destroys something or ends someone's work


_REINDEX = "REINDEX INDEX CONCURRENTLY {};"
_DROP_INDEX = "DROP INDEX CONCURRENTLY {};"
# pg_repack rewrites a table online (brief locks only); it is a client program, so this is its command.
_REPACK = "-- pg_repack --table={}  (run from a shell; needs the pg_repack extension)"
_FREEZE = "VACUUM (FREEZE, ANALYZE) {};"
# Beside every statement that cannot be undone by running it backwards.
WARN_DROP_INDEX = (
    "Destructive: the index is gone for every query that used it, including on replicas; recreating "
    "a large one takes long. Check the plans of the queries on this table first."
)
WARN_DROP_CONSTRAINT = (
    "Destructive: drops the constraint with its index; the rule it enforced is no longer checked."
)
WARN_TERMINATE = "Destructive: ends that session; its open transaction is rolled back. Ask its owner first."
WARN_DROP_SLOT = (
    "Destructive: the consumer of this replication slot loses its position and must be re-seeded."
)
WARN_ROLLBACK_PREPARED = (
    "Destructive: discards the prepared transaction's writes; its coordinator may expect to commit it."
)
# Strongest first: one recommendation per object, the strongest kept.
_STRENGTH = {"drop_index": 0, "reindex": 1}


def recommend(
    findings: Findings,
    rows: Sequence[TableRow],
    maintenance: Maintenance,
    *,
    stats_age_s: float | None = None,
    reindex_min_percent: float = 30.0,
    rewrite_min_ratio: float = 0.5,
    rewrite_min_bytes: int = 64 << 20,
    freeze_min_percent: float = 50.0,
) -> list[Recommendation]:
    """What a person should do next, each with the SQL and its evidence. None of it is run by the DAG.

    `stats_age_s`: how long this database's scan counters have counted (`evidence.evidence_age`);
    None (unknown) or younger than `maintenance.min_stats_age_days`: no DROP of an unused index.
    """
    recommendations = _index_recommendations(findings, maintenance, stats_age_s, reindex_min_percent)
    for row in rows:
        bloat = latest_bloat(row)
        if (row.bloat_ratio_after or 0) >= rewrite_min_ratio and (bloat or 0) >= rewrite_min_bytes:
            reason = (
                f"about {row.bloat_ratio_after:.0%} of the table is free space after VACUUM (estimate): "
                "plain VACUUM makes it reusable but never returns it to the operating system. Rewrite it "
                "online with pg_repack; a full rewrite inside PostgreSQL would lock the table for its duration"
            )
            evidence = f"bloat {_mib(bloat)} of {_mib(row.total_bytes_after or row.total_bytes_before)} ({BLOAT_METHOD})"
            recommendations.append(
                _on("rewrite_table", row.schema, row.table, _REPACK, reason, bloat, evidence=evidence)
            )
    sizes = {(row.schema, row.table): row.total_bytes_before for row in rows}
    for table in findings.table_xid_ages:
        if table.percent_of_freeze_max_age >= freeze_min_percent:
            reason = (
                f"xid age {table.xid_age:,} is {table.percent_of_freeze_max_age:.0f}% of "
                "autovacuum_freeze_max_age; freeze it in a quiet hour (or run this DAG with mode "
                "vacuum_freeze_analyze) before an anti-wraparound autovacuum starts at peak time"
            )
            size = sizes.get((table.schema, table.table))
            evidence = f"age(relfrozenxid) {table.xid_age:,}; size {_mib(size)}"
            recommendations.append(
                _on("freeze", table.schema, table.table, _FREEZE, reason, size, evidence=evidence)
            )
    recommendations.extend(_xmin_recommendation(holder) for holder in findings.xmin_holders)
    return recommendations


BLOAT_METHOD = "catalog estimate from pg_stats, ±20% or worse; confirm with pgstattuple"


def _index_recommendations(
    findings: Findings, maintenance: Maintenance, age: float | None, reindex_min_percent: float
) -> list[Recommendation]:
    """One recommendation per index, the strongest: DROP (duplicate, then unused) over REINDEX."""
    chosen: dict[str, Recommendation] = {}

    def offer(item: Recommendation) -> None:
        held = chosen.get(item.target)
        if held is None or _STRENGTH.get(item.kind, 9) < _STRENGTH.get(held.kind, 9):
            chosen[item.target] = item

    kept = set()  # covering indexes: the pair's survivor is never also dropped as "unused"
    for index in findings.duplicate_indexes:
        if display_name(index.schema, index.index) in kept:
            continue  # its own duplicate is dropped in its favour
        kept.add(display_name(index.schema, index.covering_index))
        offer(_duplicate(index))
    min_age_s = maintenance.min_stats_age_days * 86400
    for index in findings.unused_indexes:
        target = display_name(index.schema, index.index)
        if target in kept or target in chosen or age is None or age < min_age_s:
            continue  # too young to judge: listed in the report's unused section with the age
        reason = "never scanned; check replicas too, whose scans are counted there"
        evidence = f"0 scans in {age / 86400:.1f} days of statistics; size {_mib(index.size_bytes)}"
        offer(_drop_index(index, reason, evidence))
    for index in findings.bloated_indexes:
        if (
            index.bloat_percent or 0
        ) >= reindex_min_percent and index.actual_bytes >= maintenance.reindex_min_bytes:
            reason = "REINDEX CONCURRENTLY rebuilds it without blocking writes"
            evidence = (
                f"about {index.bloat_percent:.0f}% bloat ({_mib(index.bloat_bytes)} of {_mib(index.actual_bytes)}; "
                f"btree {BLOAT_METHOD})"
            )
            offer(
                _on(
                    "reindex",
                    index.schema,
                    index.index,
                    _REINDEX,
                    reason,
                    index.bloat_bytes,
                    evidence=evidence,
                )
            )
    for index in findings.invalid_indexes:
        if not index.build_in_progress:
            reason = (
                "invalid, left by a failed CREATE INDEX CONCURRENTLY: it costs every write and serves "
                "no read; rebuild it, or DROP INDEX CONCURRENTLY if it is not needed"
            )
            evidence = f"pg_index.indisvalid = false; size {_mib(index.size_bytes)}"
            offer(
                _on(
                    "reindex",
                    index.schema,
                    index.index,
                    _REINDEX,
                    reason,
                    index.size_bytes,
                    evidence=evidence,
                )
            )
    return list(chosen.values())


def _duplicate(index: DuplicateIndex) -> Recommendation:
    kind = "the same keys as" if index.same_keys else "a leading prefix of"
    covering = display_name(index.schema, index.covering_index)
    reason = f"has {kind} {covering}, which serves the same reads"
    evidence = f"{index.definition} is covered by {index.covering_definition}; size {_mib(index.size_bytes)}"
    if index.owning_constraint:  # the index goes with its constraint
        statement = _sql(
            "ALTER TABLE {} DROP CONSTRAINT {};",
            sql.Identifier(index.schema, index.table),
            sql.Identifier(index.owning_constraint),
        )
        return Recommendation(
            "drop_index",
            display_name(index.schema, index.index),
            reason,
            statement,
            index.size_bytes,
            evidence,
            WARN_DROP_CONSTRAINT,
        )
    return _drop_index(index, reason, evidence)


def _drop_index(index: DuplicateIndex | UnusedIndex, reason: str, evidence: str) -> Recommendation:
    return _on(
        "drop_index",
        index.schema,
        index.index,
        _DROP_INDEX,
        reason,
        index.size_bytes,
        evidence=evidence,
        warning=WARN_DROP_INDEX,
    )


def _mib(size: int | None) -> str:
    return "unknown size" if size is None else f"{size / (1 << 20):,.1f} MiB"


def _on(
    kind: str,
    schema: str,
    name: str,
    template: str,
    reason: str,
    size: int | None,
    *,
    evidence: str,
    warning: str | None = None,
) -> Recommendation:
    """A recommendation whose SQL acts on one schema-qualified relation."""
    statement = _sql(template, sql.Identifier(schema, name))
    return Recommendation(kind, display_name(schema, name), reason, statement, size, evidence, warning)


def _xmin_recommendation(holder: XminHolder) -> Recommendation:
    held = f"for {holder.duration_s:,.0f} s" if holder.duration_s is not None else ""
    reason = (
        f"holds back the xmin horizon by {holder.xmin_age or 0:,} transactions {held}: VACUUM cannot "
        "remove any row that died after it started; confirm with its owner first"
    )
    if holder.kind == "replication_slot":
        statement = _sql("SELECT pg_drop_replication_slot({});", sql.Literal(holder.name))
        warning = WARN_DROP_SLOT
    elif holder.kind == "prepared_transaction":
        statement = _sql("ROLLBACK PREPARED {};", sql.Literal(holder.name))
        warning = WARN_ROLLBACK_PREPARED
    else:
        statement = _sql("SELECT pg_terminate_backend({});", sql.Literal(holder.pid))
        warning = WARN_TERMINATE
    evidence = f"xmin age {holder.xmin_age or 0:,} transactions{', ' + held if held else ''}"
    target = f"{holder.kind} {holder.name or holder.pid}"
    return Recommendation("end_transaction", target, reason, statement, None, evidence, warning)


def _sql(template: str, *parts: sql.Composable) -> str:
    return sql.SQL(template).format(*parts).as_string()  # type: ignore[arg-type] - constant templates
