"""The maintenance DAG's vacuum step against `vacuumdb --analyze --jobs=N`, on two identical databases.

Each database holds `--tables` tables of `--rows` rows (with a primary key, autovacuum off) of which
30% are deleted before every round. One database is vacuumed by `tutormax_ops.maintenance.vacuum.execute_plan`,
the very function the DAG's `vacuum` task calls (through an Airflow connection taken from the
environment, the advisory lock included), the other by vacuumdb limited to the same schema. The
order alternates between rounds; the dead tuples are rebuilt in both databases between rounds. The
figures are medians over the rounds: on a shared 2-core machine one round can be off by 30%.
Target (issues 4 and 25): ours / vacuumdb <= 1.1.

Then the whole DAG runs once over the same tables (`airflow dags test`, its own SQLite metadata
database, an SMTP sink): the largest XCom value it stored (read from the metadata database) and the
size of the email it sent are printed beside the ratio (issue 10: < 64 KB and < 300 KB).

Many small tables (issue 25): two more identical databases with `--small-tables` tables of 10 rows, 2
of them dead before every round. `small_tables_ratio` is the vacuum step against `vacuumdb --jobs=N`
over them (median over the rounds, target <= 1.5). `steps_vs_vacuum` is snapshot_before +
snapshot_after + report + store over the vacuum step of the same round (the reference), each step
function timed in this process after a warm-up run (as in a worker that has imported them); the
median of `--rounds` rounds' ratios, target <= 2 (`steps_s` and `steps_vacuum_s`: the medians of
both sides). Then the whole DAG runs over them once: `whole_run_s` is its wall time; the task
durations of the whole run are printed too. Airflow runs with
bytecode caching on (a private PYTHONPYCACHEPREFIX, warmed first) as a deployed worker has it: with
PYTHONDONTWRITEBYTECODE, importing matplotlib alone recompiles it for seconds.

    .venv/bin/python bench/vacuum.py [--tables 500] [--rows 20000] [--small-tables 3000] [--jobs 2] [--rounds 4]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugins"))

import psycopg  # noqa: E402

from tutormax_ops.core.config import Maintenance, load_settings  # noqa: E402
from tutormax_ops.core.db import connect  # noqa: E402
from tutormax_ops.devstack import stack as devstack  # noqa: E402
from tutormax_ops.maintenance.common import request_from_params  # noqa: E402
from tutormax_ops.maintenance.plan import build_plan  # noqa: E402
from tutormax_ops.maintenance.snapshot import take_snapshot  # noqa: E402
from tutormax_ops.maintenance.vacuum import execute_plan  # noqa: E402

DATA_DIR = ROOT / ".tutormax" / "bench" / "vacuum"
SCHEMA = "bench"
CONN_ID = "bench_vacuum"
DELETED_RESIDUES = 3  # of 10: 30% of the rows are dead before each round

BUILD = """
DO $$
BEGIN
    FOR i IN 1..{tables} LOOP
        EXECUTE format(
            'CREATE TABLE bench.t%s (id int PRIMARY KEY, payload text NOT NULL) WITH (autovacuum_enabled = false)',
            i);
        EXECUTE format(
            'INSERT INTO bench.t%s SELECT g, md5(g::text) || repeat(''x'', 68) FROM generate_series(1, {rows}) AS g',
            i);
    END LOOP;
END $$
"""

# Put back the rows deleted last round (filling the space VACUUM freed) and delete the next 30%.
REBUILD_DEAD = """
DO $$
BEGIN
    FOR i IN 1..{tables} LOOP
        EXECUTE format(
            'INSERT INTO bench.t%s SELECT g, md5(g::text) || repeat(''x'', 68) FROM generate_series(1, {rows}) AS g
             WHERE g %% 10 = ANY (%L::int[])', i, '{restore}');
        EXECUTE format('DELETE FROM bench.t%s WHERE id %% 10 = ANY (%L::int[])', i, '{delete}');
    END LOOP;
END $$
"""


SMALL_SCHEMA = "small"
BUILD_SMALL = """
DO $$
BEGIN
    FOR i IN {first}..{last} LOOP
        EXECUTE format(
            'CREATE TABLE small.t%s (id int PRIMARY KEY, v text) WITH (autovacuum_enabled = false)', i);
    END LOOP;
END $$
"""
# 10 rows per table, 2 of them deleted: every table has dead tuples before each round.
DIRTY_SMALL = """
DO $$
BEGIN
    FOR i IN 1..{tables} LOOP
        EXECUTE format('INSERT INTO small.t%s SELECT g, ''x'' FROM generate_series(1, 10) AS g
                        ON CONFLICT (id) DO NOTHING', i);
        EXECUTE format('DELETE FROM small.t%s WHERE id <= 2', i);
    END LOOP;
END $$
"""


def residues(round_number: int) -> list[int]:
    return [(DELETED_RESIDUES * round_number + k) % 10 for k in range(DELETED_RESIDUES)]


def as_array(values: list[int]) -> str:
    return "{" + ",".join(map(str, values)) + "}"


def run_sql(url: str, statement: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(statement)


def in_parallel(*jobs: tuple) -> None:
    """Build both databases at once (one backend each) and wait; any failure is raised here."""
    errors: list[BaseException] = []

    def guarded(function, *args) -> None:
        try:
            function(*args)
        except BaseException as error:  # re-raised in the main thread below
            errors.append(error)

    threads = [threading.Thread(target=guarded, args=job) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def build(urls: list[str], tables: int, rows: int) -> None:
    for url in urls:
        run_sql(url, f"CREATE SCHEMA {SCHEMA}")
    statement = BUILD.format(tables=tables, rows=rows)
    in_parallel(*[(run_sql, url, statement) for url in urls])
    make_dead(urls, tables, rows, round_number=0)


def make_dead(urls: list[str], tables: int, rows: int, *, round_number: int) -> None:
    restore = residues(round_number - 1) if round_number else []
    statement = REBUILD_DEAD.format(
        tables=tables, rows=rows, restore=as_array(restore), delete=as_array(residues(round_number))
    )
    in_parallel(*[(run_sql, url, statement) for url in urls])
    for url in urls:
        run_sql(url, "CHECKPOINT")  # so that neither timed run pays for the other's dirty pages


def time_ours(url: str, jobs: int, schema: str = SCHEMA) -> tuple[float, str]:
    settings = load_settings()
    request = request_from_params(
        {"schemas": [schema], "min_dead_tuple_ratio": 0, "parallel_jobs": jobs, "window_minutes": 1440},
        Maintenance(),
    )
    with psycopg.connect(url, autocommit=True) as conn:
        plan = build_plan(conn, request, take_snapshot(conn, request.schemas, "before"))
    started = time.perf_counter()
    result = execute_plan(
        CONN_ID,
        plan,
        lock_key=settings.coordination.advisory_lock_key,
        lock_wait_s=0,
    )
    elapsed = time.perf_counter() - started
    if result.status != "completed" or len(result.outcomes) != len(plan.tables):
        raise RuntimeError(f"our vacuum step did not complete: {result.detail}")
    return elapsed, f"{len(result.outcomes)} tables, {result.database_stats}"


def time_vacuumdb(admin_url: str, database: str, jobs: int, schema: str = SCHEMA) -> tuple[float, str]:
    server = urlsplit(admin_url)
    argv = [
        str(devstack.postgres_bin_dir() / "vacuumdb"),
        "--analyze",
        f"--jobs={jobs}",
        f"--schema={schema}",  # the same tables as ours, not the system catalogs too
        "-h",
        server.hostname,
        "-p",
        str(server.port),
        "-U",
        unquote(server.username),
        "-d",
        database,
    ]
    started = time.perf_counter()
    # The password through the environment, as pg_dump gets it: never on a command line.
    env = {**os.environ, "PGPASSWORD": unquote(server.password or "")}
    subprocess.run(argv, check=True, capture_output=True, env=env)
    return time.perf_counter() - started, " ".join(argv[1:4])


def run_whole_dag(
    urls: dict[str, str], jobs: int, *, schema: str = SCHEMA, db: str = "ours", name: str = "main"
) -> dict[str, float]:
    """`airflow dags test` of the maintenance DAG over `schema`, in a subprocess with its own
    AIRFLOW_HOME; returns the largest XCom value and the email's size in KB, the wall time and each
    task's duration in seconds."""
    home = DATA_DIR / f"airflow_home_{name}"
    maildir = DATA_DIR / f"mail_{name}"
    smtp_port = devstack.free_port()
    sink = devstack.start_smtp_sink(maildir, smtp_port, log_dir=DATA_DIR / "logs")
    try:
        endpoints = devstack.Endpoints(
            db_url=urls[db],
            results_url=urls["results"],
            redis_url="redis://127.0.0.1:1",  # unused by this DAG
            smtp_url=sink.url,
        )
        env = {
            **devstack.airflow_environment(home),
            **endpoints.airflow_env(),
            "TUTORMAX_OPS__STORAGE__ARTIFACTS_BASE": (DATA_DIR / f"artifacts_{name}").resolve().as_uri(),
            "PYTHONDONTWRITEBYTECODE": "",
            "PYTHONPYCACHEPREFIX": str((DATA_DIR / "pycache").resolve()),
        }
        warm = [sys.executable, "-c", "import matplotlib.pyplot, jinja2, psycopg, airflow.sdk"]
        subprocess.run(warm, check=True, env={**os.environ, **env}, capture_output=True)
        completed = devstack.airflow_cli("db", "migrate", env=env)
        if completed.returncode:
            raise RuntimeError(f"airflow db migrate failed: {completed.stderr[-2000:]}")
        conf = {"schemas": [schema], "min_dead_tuple_ratio": 0, "parallel_jobs": jobs, "notify": "always"}
        started = time.perf_counter()
        completed = devstack.airflow_cli(
            "dags", "test", "tutormax_db_maintenance", "--conf", json.dumps(conf), env=env
        )
        elapsed = time.perf_counter() - started
        with sqlite3.connect(home / "airflow.db") as metadata:
            run_id, state = metadata.execute(
                "SELECT run_id, state FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1",
                ("tutormax_db_maintenance",),
            ).fetchone()
            largest = metadata.execute(
                "SELECT max(length(CAST(value AS BLOB))) FROM xcom WHERE dag_id = ? AND run_id = ?",
                ("tutormax_db_maintenance", run_id),
            ).fetchone()[0]
            durations = dict(
                metadata.execute(
                    "SELECT task_id, duration FROM task_instance WHERE dag_id = ? AND run_id = ?",
                    ("tutormax_db_maintenance", run_id),
                ).fetchall()
            )
        if state != "success":
            raise RuntimeError(f"the DAG run ended {state}: {completed.stdout[-3000:]}")
        emails = sorted(maildir.glob("*.eml"))
        print(
            f"whole DAG over {schema} (airflow dags test): {state} in {elapsed:.0f} s, {len(emails)} email(s)"
        )
        print(
            "  task durations (s): "
            + ", ".join(f"{task} {seconds:.2f}" for task, seconds in durations.items())
        )
        return {
            "max_xcom_kb": round(largest / 1024, 2),
            "email_kb": round(emails[-1].stat().st_size / 1024, 1),
            "wall_s": round(elapsed, 1),
            "durations": durations,
        }
    finally:
        sink.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tables", type=int, default=500)
    parser.add_argument("--small-tables", type=int, default=3000)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()

    shutil.rmtree(DATA_DIR, ignore_errors=True)
    port = devstack.free_port()
    server = devstack.start_postgres(DATA_DIR, port, log_dir=DATA_DIR / "logs")
    try:
        admin = server.url
        urls = {
            name: devstack.create_database(admin, f"bench_{name}")
            for name in ("ours", "vacuumdb", "results", "small_ours", "small_vacuumdb")
        }
        os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = json.dumps(devstack.postgres_connection(urls["ours"]))
        started = time.perf_counter()
        build([urls["ours"], urls["vacuumdb"]], args.tables, args.rows)
        print(
            f"built 2 databases × {args.tables} tables × {args.rows:,} rows in {time.perf_counter() - started:.0f} s"
        )
        # Warm-up: an Airflow worker has imported the hook long before its vacuum task starts.
        connect(CONN_ID, statement_timeout_ms=1000, lock_timeout_ms=1000).close()
        ours: list[float] = []
        theirs: list[float] = []
        for round_number in range(1, args.rounds + 1):
            make_dead([urls["ours"], urls["vacuumdb"]], args.tables, args.rows, round_number=round_number)
            runners = [
                ("ours", lambda: time_ours(urls["ours"], args.jobs), ours),
                ("vacuumdb", lambda: time_vacuumdb(admin, "bench_vacuumdb", args.jobs), theirs),
            ]
            for name, runner, times in runners if round_number % 2 else reversed(runners):
                elapsed, detail = runner()
                times.append(elapsed)
                print(f"round {round_number}: {name:<8} {elapsed:6.2f} s  ({detail})")
        ours_s, vacuumdb_s = statistics.median(ours), statistics.median(theirs)
        make_dead([urls["ours"]], args.tables, args.rows, round_number=args.rounds + 1)
        whole_dag = run_whole_dag(urls, args.jobs)
        whole_dag.pop("wall_s"), whole_dag.pop("durations")
        print(
            f"median over {args.rounds} rounds: ours {ours_s:.2f} s, vacuumdb {vacuumdb_s:.2f} s, "
            f"ratio {ours_s / vacuumdb_s:.3f} (target <= 1.1)"
        )
        small = small_tables_case(admin, urls, args)
        print(
            json.dumps(
                {
                    "ours_s": round(ours_s, 3),
                    "vacuumdb_s": round(vacuumdb_s, 3),
                    "ratio_vs_vacuumdb": round(ours_s / vacuumdb_s, 3),
                    **whole_dag,
                    **small,
                    "tables": args.tables,
                    "small_tables": args.small_tables,
                    "jobs": args.jobs,
                    "load_average": [round(load, 2) for load in os.getloadavg()],
                }
            )
        )
    finally:
        server.stop()
        shutil.rmtree(DATA_DIR / "pgdata", ignore_errors=True)  # two copies of the data: gigabytes


def time_steps(urls: dict[str, str], db: str, jobs: int) -> dict[str, float]:
    """Each step function of the DAG over the small tables, in this process, timed: what the tasks
    do once a worker has imported them."""
    from datetime import UTC, datetime

    from tutormax_ops.core.windows import Window
    from tutormax_ops.maintenance import plan, report, snapshot, store, vacuum

    endpoints = devstack.Endpoints(
        db_url=urls[db],
        results_url=urls["results"],
        redis_url="redis://127.0.0.1:1",
        smtp_url="smtp://127.0.0.1:1",
    )
    os.environ.update(endpoints.airflow_env())
    os.environ["TUTORMAX_OPS__STORAGE__ARTIFACTS_BASE"] = (DATA_DIR / "artifacts_steps").resolve().as_uri()
    params = {"schemas": [SMALL_SCHEMA], "min_dead_tuple_ratio": 0, "parallel_jobs": jobs}
    run_id = f"manual__bench_{time.time_ns()}"
    timings: dict[str, float] = {}

    def timed(step: str, function, *args, **kwargs):
        started = time.perf_counter()
        result = function(*args, **kwargs)
        timings[step] = time.perf_counter() - started
        return result

    before = timed(
        "snapshot_before", snapshot.snapshot_before, params, dag_id="tutormax_db_maintenance", run_id=run_id
    )
    planned = timed("plan", plan.plan, params, before)
    window = Window(datetime.now(UTC), 120, scheduled=False)
    timed("vacuum", vacuum.vacuum, planned, window=window, started_at=None)
    timed("snapshot_after", snapshot.snapshot_after, planned)
    built = timed("report", report.report, dag_id="tutormax_db_maintenance", run_id=run_id)
    timed("store", store.store, built, started_at=datetime.now(UTC))
    return timings


AROUND_THE_VACUUM = ("snapshot_before", "snapshot_after", "report", "store")


def steps_against_vacuum(urls: dict[str, str], args: argparse.Namespace) -> tuple[float, float, list[float]]:
    """The steps around the vacuum against the vacuum step of the same round, over `args.rounds` rounds
    after a warm-up (which pays the imports, as a fresh worker would): the medians of both, and each
    round's ratio. One round on a shared 2-core machine can be off by half."""
    arounds: list[float] = []
    vacuums: list[float] = []
    ratios: list[float] = []
    for round_number in range(args.rounds + 1):
        run_sql(urls["small_ours"], DIRTY_SMALL.format(tables=args.small_tables))
        steps = time_steps(urls, "small_ours", args.jobs)
        if not round_number:
            continue  # the warm-up
        around = sum(steps[step] for step in AROUND_THE_VACUUM)
        arounds.append(around)
        vacuums.append(steps["vacuum"])
        ratios.append(around / steps["vacuum"])
        print(
            f"steps round {round_number} (s): "
            + ", ".join(f"{step} {seconds:.2f}" for step, seconds in steps.items())
            + f"; around the vacuum {around:.2f}, ratio {ratios[-1]:.3f}"
        )
    return statistics.median(arounds), statistics.median(vacuums), ratios


def small_tables_case(admin: str, urls: dict[str, str], args: argparse.Namespace) -> dict[str, float]:
    """Many small tables: the vacuum step against vacuumdb, then the whole DAG over them."""
    pair = [urls["small_ours"], urls["small_vacuumdb"]]
    for url in pair:
        run_sql(url, f"CREATE SCHEMA {SMALL_SCHEMA}")
    for first in range(1, args.small_tables + 1, 500):  # a transaction's locks are bounded: 500 tables each
        last = min(first + 499, args.small_tables)
        in_parallel(*[(run_sql, url, BUILD_SMALL.format(first=first, last=last)) for url in pair])
    os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = json.dumps(
        devstack.postgres_connection(urls["small_ours"])
    )
    ours: list[float] = []
    theirs: list[float] = []
    for round_number in range(1, args.rounds + 1):
        in_parallel(*[(run_sql, url, DIRTY_SMALL.format(tables=args.small_tables)) for url in pair])
        for url in pair:
            run_sql(url, "CHECKPOINT")
        runners = [
            ("ours", lambda: time_ours(urls["small_ours"], args.jobs, SMALL_SCHEMA), ours),
            (
                "vacuumdb",
                lambda: time_vacuumdb(admin, "bench_small_vacuumdb", args.jobs, SMALL_SCHEMA),
                theirs,
            ),
        ]
        for name, runner, times in runners if round_number % 2 else reversed(runners):
            elapsed, detail = runner()
            times.append(elapsed)
            print(f"small round {round_number}: {name:<8} {elapsed:6.2f} s  ({detail})")
    ours_s, vacuumdb_s = statistics.median(ours), statistics.median(theirs)
    print(
        f"{args.small_tables} small tables, median over {args.rounds} rounds: ours {ours_s:.2f} s, "
        f"vacuumdb {vacuumdb_s:.2f} s, ratio {ours_s / vacuumdb_s:.3f} (target <= 1.5)"
    )
    around_s, vacuum_s, ratios = steps_against_vacuum(urls, args)
    print(
        f"median over {args.rounds} rounds: snapshots + report + store {around_s:.2f} s, the vacuum step "
        f"{vacuum_s:.2f} s; median of the rounds' ratios {statistics.median(ratios):.3f} (target <= 2)"
    )
    run_sql(urls["small_ours"], DIRTY_SMALL.format(tables=args.small_tables))
    whole = run_whole_dag(urls, args.jobs, schema=SMALL_SCHEMA, db="small_ours", name="small")
    return {
        "small_ours_s": round(ours_s, 3),
        "small_vacuumdb_s": round(vacuumdb_s, 3),
        "small_tables_ratio": round(ours_s / vacuumdb_s, 3),
        "whole_run_s": whole["wall_s"],
        "steps_vs_vacuum": round(statistics.median(ratios), 3),
        "steps_s": round(around_s, 3),
        "steps_vacuum_s": round(vacuum_s, 3),
        "small_max_xcom_kb": whole["max_xcom_kb"],
        "small_email_kb": whole["email_kb"],
    }


if __name__ == "__main__":
    main()
