"""How fast the Performance page is with a year of history (issue 13).

A self-started PostgreSQL gets a results database seeded with a year: 365 nightly load tests × 20
endpoints, 52 weekly maintenance runs × 3,000 tables, and 8,760 hourly health snapshots. Then, against
Airflow's own API server app (the plugin mounted, a real JWT):
- `data_ms`: the page's data endpoint, the median of several authenticated requests; the reference is
  the page's own HTML (the same app, auth and settings, no SQL), measured in the same run;
- `first_chart_ms`: headless Chromium (Debian's `chromium`, driven by Playwright) loads the page from a
  uvicorn server; the time from navigation start to the first Plotly chart drawn, median of several
  loads; the reference is DOMContentLoaded of the same loads.
Targets: data under 300 ms, first chart under 2 s.

    .venv/bin/python bench/page.py            # the year, about a minute on 2 cores
    .venv/bin/python bench/page.py --quick    # a month of nightly runs and 200 tables

The last line printed is one JSON object: {"data_ms", "first_chart_ms", "runs", "tables", ...}.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugins"))

SCHEMA = "tutormax_ops"
PAGE = "/tutormax-ops/performance/"
COOKIE = "_token"  # the Airflow UI's session cookie (airflow.api_fastapi.auth.managers.base_auth_manager)
FULL = {"runs": 365, "endpoints": 20, "weeks": 52, "tables": 3000}
QUICK = {"runs": 30, "endpoints": 20, "weeks": 8, "tables": 200}
DATA_TARGET_MS = 300
FIRST_CHART_TARGET_MS = 2000
SEED_SQL = [
    # The run registry first: the load tests' rows hang off it. Every 37th invalid; every 25th a
    # regression (the findings below).
    """INSERT INTO {schema}.runs (dag_id, run_id, kind, run_type, started_at, finished_at, status, headline)
        SELECT 'tutormax_load_test', 'seed_' || n, 'load_test', 'scheduled',
               date_trunc('day', now()) - (%(runs)s - n) * interval '1 day' + interval '2 hours',
               date_trunc('day', now()) - (%(runs)s - n) * interval '1 day' + interval '2 hours 5 minutes',
               v, 'nightly load test, 300 users: ' || v
        FROM generate_series(1, %(runs)s) AS n,
             LATERAL (SELECT CASE WHEN n %% 37 = 0 THEN 'invalid' WHEN n %% 25 = 0 THEN 'regression'
                                  ELSE 'pass' END AS v) AS verdict""",
    """INSERT INTO {schema}.runs (dag_id, run_id, kind, run_type, started_at, finished_at, status, headline)
        SELECT 'tutormax_perf_health', 'seed_h' || extract(epoch FROM h)::bigint, 'health', 'scheduled', h,
               h + interval '20 seconds', 'ok', 'no alert firing'
        FROM generate_series(date_trunc('hour', now()) - (%(runs)s * 24 - 1) * interval '1 hour',
                             date_trunc('hour', now()), interval '1 hour') AS h""",
    # Nightly load tests: every 37th invalid; every 25th with a regression finding on one endpoint.
    """INSERT INTO {schema}.loadtest_runs (dag_id, run_id, profile, started_at, valid, invalid_reason,
            requests, failures, error_rate, rps, p50_ms, p95_ms, p99_ms, cache_hit_rate, slow_query_rate,
            verdict, findings)
        SELECT 'tutormax_load_test', 'seed_' || n, 'nightly',
               date_trunc('day', now()) - (%(runs)s - n) * interval '1 day' + interval '2 hours',
               n %% 37 <> 0, CASE WHEN n %% 37 = 0 THEN 'generator saturated' END,
               60000, n %% 7, (n %% 7) / 600.0, 200 + (n %% 13), 12, 40 + (n %% 11), 80, 80 + (n %% 9), 2 + (n %% 5),
               CASE WHEN n %% 25 = 0 THEN 'regression' ELSE 'pass' END,
               CASE WHEN n %% 25 = 0
                    THEN jsonb_build_array(jsonb_build_object('scope', 'GET /api/endpoint_' ||
                         lpad((1 + n %% %(endpoints)s)::text, 2, '0'), 'metric', 'p95_ms'))
                    ELSE '[]'::jsonb END
        FROM generate_series(1, %(runs)s) AS n""",
    """INSERT INTO {schema}.loadtest_endpoints (dag_id, run_id, endpoint, requests, failures, error_rate,
            rps, p50_ms, p95_ms, p99_ms)
        SELECT 'tutormax_load_test', 'seed_' || n, 'GET /api/endpoint_' || lpad(e::text, 2, '0'), 3000, 0, 0.0,
               10 + e + (abs(hashtext(n || ':' || e)) %% 100) / 50.0, 10 + e,
               20 + 3 * e + (abs(hashtext(e || ':' || n)) %% 1000) / 100.0 + CASE WHEN n > %(runs)s / 2 AND e = 3 THEN 15 ELSE 0 END,
               60 + 4 * e
        FROM generate_series(1, %(runs)s) AS n, generate_series(1, %(endpoints)s) AS e""",
    """INSERT INTO {schema}.runs (dag_id, run_id, kind, run_type, started_at, finished_at, status, headline)
        SELECT 'tutormax_db_maintenance', 'seed_w' || w, 'maintenance', 'scheduled',
               date_trunc('week', now()) - (%(weeks)s - w) * interval '1 week' + interval '3 hours',
               date_trunc('week', now()) - (%(weeks)s - w) * interval '1 week' + interval '4 hours', 'success',
               'success — ' || %(tables)s || ' of ' || %(tables)s || ' tables done'
        FROM generate_series(1, %(weeks)s) AS w""",
    """INSERT INTO {schema}.table_metrics (dag_id, run_id, phase, schema_name, table_name, collected_at,
            total_bytes, live_tuples, dead_tuples, dead_ratio, bloat_bytes, bloat_ratio)
        SELECT 'tutormax_db_maintenance', 'seed_w' || w, 'before', 'public', 'table_' || lpad(t::text, 4, '0'),
               date_trunc('week', now()) - (%(weeks)s - w) * interval '1 week' + interval '3 hours',
               t * 81920, t * 100, (t * 7 + w * 13) %% 5000, 0.05, ((t * 31 + w * 17) %% 997) * 8192, 0.1
        FROM generate_series(1, %(weeks)s) AS w, generate_series(1, %(tables)s) AS t""",
    """INSERT INTO {schema}.health_snapshots (hour, dag_id, run_id, taken_at, health_score, cache_hit_rate,
            api_p95_ms, error_rate, slow_query_rate, query_p95_ms, connections_pct, sources)
        SELECT h, 'tutormax_perf_health', 'seed_h' || extract(epoch FROM h)::bigint, h,
               90 - (extract(hour FROM h)::int %% 5), 75 + (extract(hour FROM h)::int %% 20),
               40, 0.1, 3 + (extract(doy FROM h)::int %% 7), 20, 30,
               jsonb_build_object('metrics', jsonb_build_object('cache_hit_rate', 80, 'api_p95_ms', 40),
                                  'cache_hit_rate', 'seeded', 'api_p95_ms', 'seeded')
        FROM generate_series(date_trunc('hour', now()) - (%(runs)s * 24 - 1) * interval '1 hour',
                             date_trunc('hour', now()), interval '1 hour') AS h""",
    """INSERT INTO {schema}.health_alerts (hour, alert, state, transition, breaches, clears, value,
            threshold, source, message, runbook)
        VALUES (date_trunc('hour', now()), 'api_p95_ms', 'firing', 'raise', 1, 0, 450, 300, 'seeded',
                'p95 API time 450.0 ms is above the alert level of 300 ms',
                jsonb_build_array(jsonb_build_object('step', 'Check the slow queries', 'evidence', 'seeded evidence')))""",
    """INSERT INTO {schema}.health_checklist (checked_on, item, position, title, status, evidence, checked_at)
        VALUES (current_date, 'migrations', 0, 'Database migrations at head', 'pass', 'seeded', now()),
               (current_date, 'backup', 1, 'A recent backup', 'fail', 'seeded', now())""",
]


def seed_history(
    url: str, *, runs: int, endpoints: int, weeks: int, tables: int, artifacts: Path | None = None
) -> None:
    """Fill an empty results database with `runs` nightly load tests and `weeks` maintenance runs;
    with `artifacts`, the newest of each gets a stored report there."""
    from tutormax_ops.core.storage import ensure_results_schema

    params = {"runs": runs, "endpoints": endpoints, "weeks": weeks, "tables": tables}
    schema = sql.Identifier(SCHEMA)
    with psycopg.connect(url, autocommit=True) as conn:
        ensure_results_schema(conn, SCHEMA)
        for statement in SEED_SQL:
            conn.execute(sql.SQL(statement).format(schema=schema), params)
        if artifacts is not None:
            for dag_id, run_id in (
                ("tutormax_db_maintenance", f"seed_w{weeks}"),
                ("tutormax_load_test", f"seed_{runs}"),
            ):
                folder = artifacts / dag_id / run_id
                folder.mkdir(parents=True, exist_ok=True)
                (folder / "report.html").write_text(f"<h1>{dag_id} {run_id}</h1>")
                conn.execute(
                    sql.SQL(
                        "UPDATE {} SET artifacts_uri = %s, report_uri = %s WHERE dag_id = %s AND run_id = %s"
                    ).format(sql.Identifier(SCHEMA, "runs")),
                    (folder.as_uri(), (folder / "report.html").as_uri(), dag_id, run_id),
                )
        conn.execute("ANALYZE")


@contextmanager
def serving(app: object) -> Iterator[str]:
    """Serve an ASGI app with uvicorn on a free loopback port, in a thread; yield its base URL."""
    import threading

    import uvicorn

    from tutormax_ops.core.processes import LOOPBACK, free_port

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host=LOOPBACK, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://{LOOPBACK}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def chromium_path() -> str | None:
    """Debian's chromium (no browser download is possible here)."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


@contextmanager
def logged_in_page(base_url: str, token: str, executable: str) -> Iterator[object]:
    """A headless Chromium page carrying the Airflow UI's session cookie; console errors and page
    errors are collected in `page.problems`."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True)
        try:
            context = browser.new_context()
            context.add_cookies([{"name": COOKIE, "value": token, "url": base_url}])
            page = context.new_page()
            problems: list[str] = []
            page.on(
                "console", lambda message: problems.append(message.text) if message.type == "error" else None
            )
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.problems = problems
            yield page
        finally:
            browser.close()


def load_page(page: object, url: str) -> dict[str, float]:
    """Open the Performance page and wait until every chart is drawn; the browser's own timings."""
    page.goto(url)
    page.wait_for_function("document.body.dataset.ready === 'true'", timeout=60_000)
    return page.evaluate(
        "({first_chart_ms: window.firstChartAt,"
        " dom_ms: performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd})"
    )


def _median_ms(call: Callable[[], object], repeats: int) -> float:
    call()  # warm-up: connections, imports, caches
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def measure(sizes: dict[str, int], repeats: int) -> dict[str, float]:
    from tutormax_ops.devstack import stack as devstack

    state = ROOT / ".tutormax" / "bench" / "page"
    shutil.rmtree(state, ignore_errors=True)
    env = devstack.airflow_environment(state / "airflow_home")
    os.environ.update(env)
    migrated = devstack.airflow_cli("db", "migrate", env=env)
    if migrated.returncode != 0:
        raise RuntimeError(migrated.stderr[-2000:])
    executable = chromium_path()
    if executable is None:
        raise RuntimeError("chromium is not installed: apt-get install -y chromium")
    with devstack.running_stack(state / "stack") as stack:
        url = devstack.create_database(stack.admin_url, "page_bench")
        started = time.perf_counter()
        seed_history(url, **sizes, artifacts=state / "artifacts")
        print(f"seeded {sizes} in {time.perf_counter() - started:.1f} s")
        os.environ["AIRFLOW_CONN_TUTORMAX_RESULTS"] = json.dumps(devstack.postgres_connection(url))
        os.environ["TUTORMAX_OPS__STORAGE__ARTIFACTS_BASE"] = (state / "artifacts").as_uri()
        import httpx
        from airflow.api_fastapi.app import create_app, get_auth_manager
        from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

        app = create_app("core")
        token = get_auth_manager().generate_jwt(SimpleAuthManagerUser(username="bench", role="viewer"))
        with (
            serving(app) as base,
            httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}) as client,
        ):

            def get(path: str) -> None:
                client.get(PAGE + path, timeout=60).raise_for_status()

            data_ms = _median_ms(lambda: get("data"), repeats)
            html_ms = _median_ms(lambda: get(""), repeats)
            size = len(client.get(PAGE + "data").content)
            print(
                f"data endpoint: {data_ms:.1f} ms median of {repeats} ({size / 1024:.0f} kB); page HTML {html_ms:.1f} ms"
            )
            with logged_in_page(base, token, executable) as page:
                loads = [load_page(page, base + PAGE) for _ in range(repeats)]
                if page.problems:
                    raise RuntimeError(f"console errors: {page.problems}")
        first = statistics.median(load["first_chart_ms"] for load in loads)
        dom = statistics.median(load["dom_ms"] for load in loads)
        print(f"first chart: {first:.0f} ms median of {repeats} loads; DOMContentLoaded {dom:.0f} ms")
    return {
        "data_ms": round(data_ms, 1),
        "first_chart_ms": round(first, 1),
        "runs": sizes["runs"],
        "tables": sizes["tables"],
        "endpoints": sizes["endpoints"],
        "weeks": sizes["weeks"],
        "data_vs_page_html": round(data_ms / html_ms, 2),
        "first_chart_vs_dom_loaded": round(first / dom, 2),
        "data_kb": round(size / 1024),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL
    figures = measure(sizes, repeats=3 if args.quick else 7)
    targets = figures["data_ms"] < DATA_TARGET_MS and figures["first_chart_ms"] < FIRST_CHART_TARGET_MS
    print(
        f"targets (data < {DATA_TARGET_MS} ms, first chart < {FIRST_CHART_TARGET_MS} ms): {'met' if targets else 'MISSED'}"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
