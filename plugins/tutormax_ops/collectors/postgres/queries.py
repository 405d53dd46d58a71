"""Queries, from pg_stat_statements: top statements, slow statements and the seed's query stats.

pg_stat_statements only counts up. Figures for a period come from the difference between two
snapshots (`statements_snapshot` before and after); nothing here ever calls
`pg_stat_statements_reset()`, which would wipe the counters other people rely on. Passing `before=None`
means "since the counters started" (`stats_since` on PG17+).

No percentile is stored, so the p95 is an estimate (see `P95_METHOD`), and so is the count of slow
calls, which comes from the same model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import psycopg
from psycopg import sql

from tutormax_ops.collectors.postgres._run import (
    column_or,
    extension_schema,
    fetch_all,
    fetch_one,
    first_column,
    relation_columns,
)

P95_METHOD = (
    "Each statement's calls in the period are modelled as a normal distribution with the period's mean "
    "and standard deviation, clamped to the statement's observed min and max; the p95 is the 95th "
    "percentile of the calls-weighted mixture of those distributions (found by bisection)."
)
_Z95 = 1.6448536269514722  # the standard normal's 95th percentile
_BISECTION_STEPS = 60


@dataclass(frozen=True)
class _StatementFigures:
    """What pg_stat_statements says of one top-level statement (times in milliseconds)."""

    userid: int
    queryid: int
    query: str
    calls: int
    rows: int
    total_ms: float
    mean_ms: float
    stddev_ms: float
    min_ms: float  # bounds since the counters started
    max_ms: float


@dataclass(frozen=True)
class StatementStat(_StatementFigures):
    """Cumulative counters of one statement."""

    stats_since: datetime | None  # PG17+: when this entry's counters started
    shared_blks_read: int = 0  # blocks read from disk or the OS cache, not from shared buffers
    shared_blks_hit: int = 0


@dataclass(frozen=True)
class StatementsSnapshot:
    """pg_stat_statements of the current database at one moment, or why it cannot be read."""

    available: bool
    reason: str | None
    fix: str | None
    taken_at: datetime
    statements: tuple[StatementStat, ...] = ()


@dataclass(frozen=True)
class StatementDelta(_StatementFigures):
    """One statement over a period: counts and times are differences between two snapshots; min_ms and
    max_ms stay the bounds since the counters started, within which the period's calls lie."""

    p95_ms: float  # estimate: mean + 1.645 stddev, clamped to [min_ms, max_ms]
    shared_blks_read: int = 0
    shared_blks_hit: int = 0


@dataclass(frozen=True)
class QueryStats:
    """The seed's query stats (`/api/performance/query/stats`), over the period between two snapshots.

    Figures are None when pg_stat_statements is unavailable; `reason` and `fix` then say why and how.
    `slow_query_rate` is a percentage of `total_queries`.
    """

    available: bool
    reason: str | None
    fix: str | None
    slow_threshold_ms: float
    period_s: float | None  # None: since the counters started
    total_queries: int | None = None
    slow_queries: int | None = None
    slow_query_rate: float | None = None
    avg_time_ms: float | None = None
    p95_time_ms: float | None = None
    statements: int = 0
    p95_is_estimate: bool = True
    slow_queries_is_estimate: bool = True
    p95_method: str = P95_METHOD


def statements_snapshot(conn: psycopg.Connection) -> StatementsSnapshot:
    """The current counters, or an unavailable snapshot that says how to enable pg_stat_statements."""
    taken_at = datetime.now(UTC)
    status = fetch_one(conn, "statements_status", _Status)
    schema = extension_schema(conn, "pg_stat_statements")
    if schema is None or not status.preloaded:
        reason, fix = _unavailable(status, installed=schema is not None)
        return StatementsSnapshot(False, reason, fix, taken_at)
    columns = relation_columns(conn, schema, "pg_stat_statements")
    # PG13 renamed total_time to total_exec_time (and so on); PG14 added toplevel, PG17 stats_since.
    parts = {
        kind: first_column(columns, "s", f"{kind}_exec_time", f"{kind}_time")
        for kind in ("total", "mean", "stddev", "min", "max")
    }
    try:
        with conn.transaction():
            rows = fetch_all(
                conn,
                "statements",
                StatementStat,
                schema=sql.Identifier(schema),
                toplevel=column_or(columns, "s", "toplevel", "true"),
                stats_since=column_or(columns, "s", "stats_since", "NULL"),
                **parts,
            )
    except psycopg.Error as error:
        if conn.broken:
            raise
        fix = "check that this role may read pg_stat_statements (pg_read_all_stats, part of pg_monitor)"
        return StatementsSnapshot(False, str(error).splitlines()[0], fix, taken_at)
    return StatementsSnapshot(True, None, None, taken_at, tuple(rows))


def statement_deltas(before: StatementsSnapshot | None, after: StatementsSnapshot) -> list[StatementDelta]:
    """Each statement's activity between the snapshots (statements with no new call are left out).

    An entry whose counters went backwards, or whose `stats_since` changed, was reset or evicted and
    re-created in between: its `after` counters are then the period's whole activity.
    """
    previous = {(s.userid, s.queryid): s for s in before.statements} if before else {}
    deltas = []
    for stat in after.statements:
        old = previous.get((stat.userid, stat.queryid))
        if old is not None and (stat.calls < old.calls or stat.stats_since != old.stats_since):
            old = None
        delta = _difference(old, stat)
        if delta is not None:
            deltas.append(delta)
    return deltas


def top_queries(
    before: StatementsSnapshot | None,
    after: StatementsSnapshot,
    *,
    by: Literal["total", "mean"] = "total",
    limit: int = 10,
) -> list[StatementDelta]:
    """The statements that took the most time in the period, in total or per call."""
    key = (lambda d: d.total_ms) if by == "total" else (lambda d: d.mean_ms)
    return sorted(statement_deltas(before, after), key=key, reverse=True)[:limit]


def slow_queries(
    before: StatementsSnapshot | None,
    after: StatementsSnapshot,
    *,
    min_duration_ms: float = 100.0,
    limit: int = 20,
) -> list[StatementDelta]:
    """Statements whose mean time in the period is at least `min_duration_ms`, slowest first."""
    slow = [d for d in statement_deltas(before, after) if d.mean_ms >= min_duration_ms]
    return sorted(slow, key=lambda d: d.mean_ms, reverse=True)[:limit]


def query_stats(
    before: StatementsSnapshot | None, after: StatementsSnapshot, *, min_duration_ms: float = 100.0
) -> QueryStats:
    """`total_queries, slow_queries, slow_query_rate, avg_time_ms, p95_time_ms` over the period."""
    period_s = (after.taken_at - before.taken_at).total_seconds() if before else None
    for snapshot in (after, before):
        if snapshot is not None and not snapshot.available:
            return QueryStats(False, snapshot.reason, snapshot.fix, min_duration_ms, period_s)
    deltas = statement_deltas(before, after)
    calls = sum(d.calls for d in deltas)
    slow = round(sum(d.calls * (1 - _cdf(d, min_duration_ms)) for d in deltas))
    return QueryStats(
        available=True,
        reason=None,
        fix=None,
        slow_threshold_ms=min_duration_ms,
        period_s=period_s,
        total_queries=calls,
        slow_queries=slow,
        slow_query_rate=round(100 * slow / calls, 2) if calls else 0.0,
        avg_time_ms=round(sum(d.total_ms for d in deltas) / calls, 2) if calls else 0.0,
        p95_time_ms=round(_mixture_percentile(deltas, 0.95), 2) if calls else 0.0,
        statements=len(deltas),
    )


@dataclass(frozen=True)
class _Status:
    database: str
    preloaded: bool


def _unavailable(status: _Status, *, installed: bool) -> tuple[str, str]:
    create = f"run CREATE EXTENSION pg_stat_statements in database {status.database}"
    preload = "add pg_stat_statements to shared_preload_libraries in postgresql.conf and restart the server"
    if not status.preloaded and not installed:
        return (
            "pg_stat_statements is not loaded and not installed in this database",
            f"{preload}, then {create}",
        )
    if not status.preloaded:
        return "pg_stat_statements must be loaded via shared_preload_libraries", preload
    return "the pg_stat_statements extension is not installed in this database", create


def _difference(old: StatementStat | None, new: StatementStat) -> StatementDelta | None:
    calls = new.calls - (old.calls if old else 0)
    if calls <= 0:
        return None
    total_ms = new.total_ms - (old.total_ms if old else 0.0)
    mean_ms = total_ms / calls
    # pg_stat_statements keeps a population stddev; sums of squares subtract across snapshots.
    squares = _sum_of_squares(new) - (_sum_of_squares(old) if old else 0.0)
    stddev_ms = math.sqrt(max(squares / calls - mean_ms**2, 0.0))
    return StatementDelta(
        userid=new.userid,
        queryid=new.queryid,
        query=new.query,
        calls=calls,
        rows=new.rows - (old.rows if old else 0),
        total_ms=total_ms,
        mean_ms=mean_ms,
        stddev_ms=stddev_ms,
        min_ms=new.min_ms,
        max_ms=new.max_ms,
        p95_ms=min(max(mean_ms + _Z95 * stddev_ms, new.min_ms), new.max_ms),
        shared_blks_read=new.shared_blks_read - (old.shared_blks_read if old else 0),
        shared_blks_hit=new.shared_blks_hit - (old.shared_blks_hit if old else 0),
    )


def _sum_of_squares(stat: StatementStat) -> float:
    return stat.calls * (stat.stddev_ms**2 + stat.mean_ms**2)


def _cdf(delta: StatementDelta, x: float) -> float:
    """P(one call of the statement took at most x ms) under the clamped normal model."""
    if x >= delta.max_ms:
        return 1.0
    if x < delta.min_ms:
        return 0.0
    if delta.stddev_ms == 0:
        return 1.0 if x >= delta.mean_ms else 0.0
    return 0.5 * (1 + math.erf((x - delta.mean_ms) / (delta.stddev_ms * math.sqrt(2))))


def _mixture_percentile(deltas: Sequence[StatementDelta], quantile: float) -> float:
    target = quantile * sum(d.calls for d in deltas)
    low, high = 0.0, max(d.max_ms for d in deltas)  # every call lies at or below the largest max
    for _ in range(_BISECTION_STEPS):
        middle = (low + high) / 2
        if sum(d.calls * _cdf(d, middle) for d in deltas) >= target:
            high = middle
        else:
            low = middle
    return high
