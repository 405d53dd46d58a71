"""What the PostgreSQL collectors cost as the data grows while the catalog stays the same (issue 3).

A self-started server gets one database with 2,000 tables and 6,000 indexes (a primary key and two
secondary indexes each). It is measured at about 0.5 GB of table data, then again after a few large
tables have grown it to at least 3 GB. At both sizes, on warm caches, the best of several runs of:
- a full collection pass (`collect_all`: tables, bloat estimates, indexes, pg_stat_statements, health)
  under the configured statement and lock timeouts;
- the table bloat estimate (`table_bloat`, catalog only) and, printed alongside, the btree index
  estimate (`index_bloat`);
- exact pgstattuple over the same tables (`exact_bloat`, which reads every page).
Targets: a full pass under 2 s; at the large size the estimate at least 10x faster than pgstattuple,
and the estimate's time growing at most 1.3x between the two sizes.

The last line printed is one JSON object with the figures at the large size.

    .venv/bin/python bench/collectors.py            # the full run, about 5 minutes on 2 cores
    .venv/bin/python bench/collectors.py --quick    # a small smoke version, under a minute
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugins"))

from tutormax_ops.collectors.postgres import collect_all  # noqa: E402
from tutormax_ops.collectors.postgres.bloat import exact_bloat, index_bloat, table_bloat  # noqa: E402
from tutormax_ops.core.config import Collectors  # noqa: E402
from tutormax_ops.core.db import apply_session_limits  # noqa: E402
from tutormax_ops.devstack import stack as devstack  # noqa: E402

BENCH_DIR = ROOT / ".tutormax" / "bench" / "collectors"
GB = 1024**3
WORKERS = 2  # one loading session per core
EXACT_TIMEOUT_MS = 600_000  # pgstattuple on a large table legitimately takes longer than a collector may


@dataclass(frozen=True)
class Plan:
    tables: int
    rows_per_table: int  # in every table, at the first size
    large_tables: int  # the tables that grow for the second size
    large_rows: int  # rows added to each of them
    small_target_gb: float
    large_target_gb: float
    repeats: int


FULL = Plan(
    tables=2000,
    rows_per_table=2600,
    large_tables=4,
    large_rows=4_600_000,
    small_target_gb=0.5,
    large_target_gb=3.0,
    repeats=7,
)
QUICK = Plan(
    tables=200,
    rows_per_table=500,
    large_tables=2,
    large_rows=300_000,
    small_target_gb=0.0,
    large_target_gb=0.0,
    repeats=3,
)

# Rows like the service's lesson log: a bigint key, a low-cardinality foreign key, a status, a nullable
# note and a timestamp. Large tables carry a wider note, as a log's payload would.
CREATE_TABLE = (
    "CREATE TABLE {table} (id bigint, tutor_id int, status text, note text, created_at timestamptz)"
)
INSERT_ROWS = """
    INSERT INTO {table}
    SELECT g, g %% 1000, (ARRAY['done', 'cancelled', 'scheduled'])[1 + g %% 3],
           CASE WHEN g %% 10 <> 0 THEN repeat(md5(g::text), %(note_repeats)s::int) END,
           '2026-01-01'::timestamptz + g * interval '1 second'
    FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS g
"""
CREATE_INDEXES = (
    "ALTER TABLE {table} ADD PRIMARY KEY (id)",
    "CREATE INDEX ON {table} (tutor_id)",
    "CREATE INDEX ON {table} (created_at)",
)


def table_name(number: int) -> sql.Identifier:
    return sql.Identifier("public", f"lessons_{number:04d}")


def run(conn: psycopg.Connection, template: str, table: sql.Identifier, **params: int) -> None:
    conn.execute(sql.SQL(template).format(table=table), params)  # type: ignore[arg-type] - constants above


def in_parallel(url: str, items: Sequence[int], work: Callable[[psycopg.Connection, int], None]) -> None:
    """`work(conn, item)` for every item, spread over WORKERS autocommit sessions."""

    def worker(share: Sequence[int]) -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            for item in share:
                work(conn, item)

    with ThreadPoolExecutor(WORKERS) as pool:
        for future in [pool.submit(worker, items[index::WORKERS]) for index in range(WORKERS)]:
            future.result()


def build_small(url: str, plan: Plan) -> None:
    def build(conn: psycopg.Connection, number: int) -> None:
        table = table_name(number)
        run(conn, CREATE_TABLE, table)
        run(conn, INSERT_ROWS, table, first=1, last=plan.rows_per_table, note_repeats=1)
        for statement in CREATE_INDEXES:  # after the load: a sorted build is faster than inserts
            run(conn, statement, table)
        run(conn, "ANALYZE {table}", table)

    in_parallel(url, range(1, plan.tables + 1), build)


def grow_large(url: str, plan: Plan) -> None:
    batch = 500_000

    def grow(conn: psycopg.Connection, number: int) -> None:
        table = table_name(number)
        for first in range(plan.rows_per_table + 1, plan.rows_per_table + plan.large_rows + 1, batch):
            last = min(first + batch - 1, plan.rows_per_table + plan.large_rows)
            run(conn, INSERT_ROWS, table, first=first, last=last, note_repeats=3)
        run(conn, "ANALYZE {table}", table)

    in_parallel(url, range(1, plan.large_tables + 1), grow)


def catalog_counts(conn: psycopg.Connection) -> tuple[int, int, float]:
    """User tables, their indexes, and their table data (heap and TOAST, no indexes) in GB."""
    tables, data_bytes = conn.execute(
        "SELECT count(*), sum(pg_table_size(relid)) FROM pg_stat_user_tables"
    ).fetchone()
    indexes = conn.execute("SELECT count(*) FROM pg_stat_user_indexes").fetchone()[0]
    return tables, indexes, float(data_bytes) / GB


def best_seconds(action: Callable[[], object], repeats: int) -> tuple[float, list[float]]:
    """The best wall time of `repeats` runs, after one untimed warm-up run.

    The best, as timeit recommends, rather than the median: the work is the same every run and this
    machine is shared, so other processes only ever add time (the runs are printed too).
    """
    action()
    runs = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        runs.append(time.perf_counter() - started)
    return min(runs), runs


@dataclass(frozen=True)
class Figures:
    full_pass_s: float
    estimate_s: float
    exact_s: float
    tables: int
    indexes: int
    data_gb: float


def measure(url: str, plan: Plan, label: str) -> Figures:
    limits = Collectors()
    with session(url, limits.statement_timeout_ms, limits.lock_timeout_ms) as conn:
        tables, indexes, data_gb = catalog_counts(conn)
        relations = conn.execute(
            "SELECT schemaname::text, relname::text FROM pg_stat_user_tables ORDER BY relname"
        ).fetchall()
        full_pass_s, full_runs = best_seconds(lambda: collect_all(conn), plan.repeats)
        estimate_s, estimate_runs = best_seconds(lambda: table_bloat(conn), plan.repeats)
        index_estimate_s, index_runs = best_seconds(lambda: index_bloat(conn), plan.repeats)
    with session(url, EXACT_TIMEOUT_MS, limits.lock_timeout_ms) as conn:
        exact_s, exact_runs = best_seconds(lambda: exact_bloat(conn, relations), max(1, plan.repeats // 2))
    print(f"== {label}: {tables} tables, {indexes} indexes, {data_gb:.2f} GB of table data")
    print(f"   full collection pass: {full_pass_s:.3f} s  (runs: {fmt(full_runs)})")
    print(f"   table bloat estimate: {estimate_s:.3f} s  (runs: {fmt(estimate_runs)})")
    print(f"   exact pgstattuple:    {exact_s:.3f} s  (runs: {fmt(exact_runs)}), over the same tables")
    print(f"   index bloat estimate: {index_estimate_s:.3f} s  (runs: {fmt(index_runs)})")
    return Figures(full_pass_s, estimate_s, exact_s, tables, indexes, data_gb)


def fmt(runs: list[float]) -> str:
    return ", ".join(f"{seconds:.3f}" for seconds in runs)


@contextmanager
def session(url: str, statement_timeout_ms: int, lock_timeout_ms: int) -> Iterator[psycopg.Connection]:
    """A read-only collector session; prepare_threshold=None so that no run times a prepared plan."""
    with psycopg.connect(url, autocommit=True, prepare_threshold=None) as conn:
        yield apply_session_limits(
            conn, statement_timeout_ms=statement_timeout_ms, lock_timeout_ms=lock_timeout_ms, read_only=True
        )


@contextmanager
def bench_server(keep: bool) -> Iterator[str]:
    """A throwaway server under .tutormax/bench; yields the admin URL; stopped (and removed) after."""
    shutil.rmtree(BENCH_DIR, ignore_errors=True)
    port = devstack.free_port()
    server = devstack.start_postgres(BENCH_DIR / "postgres", port, log_dir=BENCH_DIR / "logs")
    try:
        admin_url = server.url
        with psycopg.connect(admin_url, autocommit=True) as admin:
            # Bulk loading: fewer checkpoints, and no autovacuum competing with the measurements.
            admin.execute("ALTER SYSTEM SET max_wal_size = '16GB'")
            admin.execute("ALTER SYSTEM SET autovacuum = off")
            admin.execute("SELECT pg_reload_conf()")
        yield admin_url
    finally:
        server.stop()
        if not keep:
            shutil.rmtree(BENCH_DIR, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a small smoke version, to iterate")
    parser.add_argument("--keep", action="store_true", help=f"keep the server's data under {BENCH_DIR}")
    args = parser.parse_args()
    plan = QUICK if args.quick else FULL
    started = time.perf_counter()
    with bench_server(args.keep) as admin_url:
        url = devstack.create_database(admin_url, "collectors_bench")
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute("CREATE EXTENSION pg_stat_statements")
            admin.execute("CREATE EXTENSION pgstattuple")
        build_small(url, plan)
        print(f"built {plan.tables} tables in {time.perf_counter() - started:.0f} s")
        small = measure(url, plan, "small")
        grown_at = time.perf_counter()
        grow_large(url, plan)
        print(f"grew {plan.large_tables} tables in {time.perf_counter() - grown_at:.0f} s")
        large = measure(url, plan, "large")
    speedup = large.exact_s / large.estimate_s
    growth = large.estimate_s / small.estimate_s
    checks = {
        "full pass < 2 s at both sizes": max(small.full_pass_s, large.full_pass_s) < 2,
        "estimate >= 10x faster than pgstattuple (large)": speedup >= 10,
        "estimate grows <= 1.3x": growth <= 1.3,
        f"about {plan.small_target_gb} GB, then >= {plan.large_target_gb} GB": small.data_gb
        >= 0.8 * plan.small_target_gb
        and large.data_gb >= plan.large_target_gb,
    }
    for check, passed in checks.items():
        print(f"{'PASS' if passed else 'FAIL'}  {check}")
    print(f"total run time: {time.perf_counter() - started:.0f} s")
    figures = {
        "full_pass_s": round(large.full_pass_s, 3),
        "estimate_s": round(large.estimate_s, 3),
        "exact_s": round(large.exact_s, 3),
        "estimate_speedup": round(speedup, 1),
        "estimate_growth": round(growth, 2),
        "tables": large.tables,
        "indexes": large.indexes,
        "data_gb": round(large.data_gb, 2),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
