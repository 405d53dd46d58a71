"""queries: pg_stat_statements snapshots, figures from their difference, and the unavailable result.

The positive tests need pg_stat_statements in shared_preload_libraries; on a server without it they
are skipped, while the "unavailable" test runs everywhere.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from tutormax_ops.collectors.postgres.queries import (
    StatementsSnapshot,
    StatementStat,
    query_stats,
    slow_queries,
    statement_deltas,
    statements_snapshot,
    top_queries,
)

SLOW_CALLS, FAST_CALLS, SLOW_S = 20, 100, 0.02


@pytest.fixture(scope="module")
def database(fresh_database, statements_preloaded) -> str:
    if not statements_preloaded:
        pytest.skip("pg_stat_statements is not in shared_preload_libraries on this server")
    url = fresh_database("queries")
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute("CREATE EXTENSION pg_stat_statements")
    return url


@pytest.fixture(scope="module")
def window(database) -> tuple[StatementsSnapshot, StatementsSnapshot]:
    """Snapshots around a known workload: 20 calls of about 20 ms and 100 of well under 1 ms."""
    # Autocommit: a statement is counted when its portal closes, which inside an open transaction
    # waits for the next statement.
    with (
        psycopg.connect(database, autocommit=True) as reader,
        psycopg.connect(database, autocommit=True) as worker,
    ):
        worker.execute("SELECT %s::int AS warm_up", (0,))
        before = statements_snapshot(reader)
        for _ in range(SLOW_CALLS):
            worker.execute("SELECT pg_sleep(%s)", (SLOW_S,))
        for number in range(FAST_CALLS):
            worker.execute("SELECT %s::int AS warm_up", (number,))
        after = statements_snapshot(reader)
    return before, after


def test_unavailable_without_the_extension(connect, fresh_database, statements_preloaded) -> None:
    """A database where CREATE EXTENSION never ran: a clear result with how to fix it, not a crash."""
    conn = connect(fresh_database("queries_bare"))
    snapshot = statements_snapshot(conn)
    assert not snapshot.available and snapshot.statements == ()
    assert "CREATE EXTENSION pg_stat_statements" in snapshot.fix
    if not statements_preloaded:
        assert "shared_preload_libraries" in snapshot.fix
    stats = query_stats(None, snapshot)
    assert not stats.available and stats.total_queries is None
    assert (stats.reason, stats.fix) == (snapshot.reason, snapshot.fix)
    assert top_queries(None, snapshot) == []


@pytest.mark.server_variant
def test_unavailable_when_installed_but_not_preloaded(connect, fresh_database, statements_preloaded) -> None:
    """The view exists but reading it raises: the result says to preload the library."""
    if statements_preloaded:
        pytest.skip("this server preloads pg_stat_statements")
    url = fresh_database("queries_not_loaded")
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute("CREATE EXTENSION pg_stat_statements")
    snapshot = statements_snapshot(connect(url))
    assert not snapshot.available
    assert "shared_preload_libraries" in snapshot.reason and "restart" in snapshot.fix


def test_snapshot_detects_columns(connect, database) -> None:
    snapshot = statements_snapshot(connect(database))
    assert snapshot.available and snapshot.statements
    has_stats_since = {
        name
        for (name,) in connect(database).execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = 'pg_stat_statements'::regclass"
        )
    } >= {"stats_since"}
    assert all((stat.stats_since is not None) == has_stats_since for stat in snapshot.statements)


def test_query_stats_over_the_window(window) -> None:
    stats = query_stats(*window, min_duration_ms=10)
    assert stats.available and stats.p95_is_estimate and "normal" in stats.p95_method
    # The workload, plus the few statements the first snapshot itself ran.
    assert SLOW_CALLS + FAST_CALLS <= stats.total_queries <= SLOW_CALLS + FAST_CALLS + 10
    assert stats.slow_queries == pytest.approx(SLOW_CALLS, abs=2)
    assert stats.slow_query_rate == pytest.approx(100 * stats.slow_queries / stats.total_queries, abs=0.01)
    # More than 5% of calls take about 20 ms, so the 95th percentile lies among them.
    assert 1000 * SLOW_S * 0.95 <= stats.p95_time_ms <= 1000 * SLOW_S * 2
    assert stats.avg_time_ms * stats.total_queries >= SLOW_CALLS * SLOW_S * 1000 * 0.95
    assert stats.period_s > 0


def test_top_and_slow_queries(window) -> None:
    [slowest] = top_queries(*window, by="mean", limit=1)
    assert "pg_sleep" in slowest.query and slowest.calls == SLOW_CALLS
    assert slowest.mean_ms >= 1000 * SLOW_S and slowest.p95_ms <= slowest.max_ms
    assert "pg_sleep" in top_queries(*window, by="total", limit=1)[0].query
    assert [delta.query for delta in slow_queries(*window, min_duration_ms=10)] == [slowest.query]


def test_deltas_count_only_the_window(window) -> None:
    """The fast statement ran once before the first snapshot: only the window's calls count."""
    fast = next(delta for delta in statement_deltas(*window) if "warm_up" in delta.query)
    assert fast.calls == FAST_CALLS
    since_start = next(delta for delta in statement_deltas(None, window[1]) if "warm_up" in delta.query)
    assert since_start.calls == FAST_CALLS + 1


def test_pg_monitor_role_reads_statements(connect, database, monitor_role) -> None:
    snapshot = statements_snapshot(connect(database, role=monitor_role))
    assert snapshot.available
    assert not any(stat.query == "<insufficient privilege>" for stat in snapshot.statements)


def stat(
    calls: int, mean: float, stddev: float, *, since: datetime | None = None, max_ms: float = 1e6
) -> StatementStat:
    return StatementStat(1, 42, "SELECT 1", calls, calls, calls * mean, mean, stddev, 0.0, max_ms, since)


def snapshot_of(*stats: StatementStat) -> StatementsSnapshot:
    return StatementsSnapshot(True, None, None, datetime.now(UTC), stats)


def test_delta_mean_and_stddev_are_the_windows() -> None:
    """10 calls at exactly 5 ms, then 10 more at exactly 15 ms: the window's are 15 ms, stddev 0."""
    before, after = stat(10, 5.0, 0.0), stat(20, 10.0, 5.0)
    [delta] = statement_deltas(snapshot_of(before), snapshot_of(after))
    assert (delta.calls, delta.mean_ms) == (10, pytest.approx(15.0))
    assert delta.stddev_ms == pytest.approx(0.0, abs=1e-6)


def test_reset_or_evicted_entries_count_from_zero() -> None:
    since = datetime.now(UTC)
    went_down = statement_deltas(snapshot_of(stat(50, 1.0, 0.0)), snapshot_of(stat(3, 1.0, 0.0)))
    assert [delta.calls for delta in went_down] == [3]
    restarted = statement_deltas(
        snapshot_of(stat(5, 1.0, 0.0, since=since)),
        snapshot_of(stat(8, 1.0, 0.0, since=since + timedelta(seconds=1))),
    )
    assert [delta.calls for delta in restarted] == [8]


def test_p95_of_a_mixture() -> None:
    """90 calls at 1 ms and 10 at 50 ms: 10% are slow, so the 95th percentile is 50 ms."""
    fast = StatementStat(1, 1, "fast", 90, 90, 90.0, 1.0, 0.0, 1.0, 1.0, None)
    slow = StatementStat(1, 2, "slow", 10, 10, 500.0, 50.0, 0.0, 50.0, 50.0, None)
    stats = query_stats(None, snapshot_of(fast, slow), min_duration_ms=10)
    assert (stats.total_queries, stats.slow_queries, stats.slow_query_rate) == (100, 10, 10.0)
    assert stats.p95_time_ms == pytest.approx(50.0, abs=0.01)
    assert stats.avg_time_ms == pytest.approx(5.9)
