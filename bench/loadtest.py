"""Load-test benchmarks, in one run:

(a) Harness capacity: requests per CPU-second of locust with our locustfile (its machinery, think
    time 0) next to the minimal FastHttpUser locustfile, both against the same trivial server
    (an asyncio HTTP/1.1 server started here). CPU-seconds come from the locust process's own
    rusage, so the server's share of the 2 cores does not enter. Target: ratio ≥ 0.85.
(b) Detector quality on synthetic p95 histories, through `tutormax_ops.loadtest.regression` with the shipped
    settings: a +20 % step (40 runs at CV 5 %, then the step) must be detected within 3 runs in
    ≥ 95 % of trials; stationary noise at CV 10 % may raise ≤ 1 false alarm per 100 runs. The
    detection rate at CV 10 % is printed too: there a +20 % step is 2σ, and no detector reaches
    95 % within 3 runs at ≤ 1 % false alarms (the likelihood-ratio test on the mean of 3 runs would
    need a one-sided α of 3.5 %).
(c) Analysis speed: a history of 1,000 runs × 20 endpoints, judged as the DAG judges it
    (`loadtest.series.build_series` then `regression.analyze_history`). Target: < 1 s.
(d) Does the reference service meet the seed's targets here? The baseline profile (300 users at
    10/s, think time 0.5–1.5 s, 120 s) against a self-started stack with two days of
    production-like data; `--quick` runs a smoke-sized load (20 users, 30 s) instead.

(e) Real runs (`loadtest_real.py`): 8 smoke runs (the profile as shipped: its users, think time and
    run time, so its request volume) against the unchanged reference service, one with
    +120 ms on the tutor routes, 2 recovery runs, judged as the DAG judges them with the shipped
    settings: `real_false_alarms` (findings on unchanged runs; target 0),
    `real_detected` (slowed endpoints flagged; target all), `real_wrongly_flagged` (other endpoints
    flagged in the step run; target 0), `min_detectable_step_pct` (median over endpoints),
    `unjudged_endpoints` (endpoints a scheduled smoke run, sized from the unchanged runs' request
    rates within the profile's `max_run_time_s`, would leave unjudged; target 0) and `sized_run_time_s`.
(g) The rule on simulated runs (`loadtest_rule.py`), each series at its real level, request count
    and run-to-run spread (response times drawn in whole ms, the p95 and its interval taken from
    them, the whole run judged as the DAG judges it): `fa_per_run_pct`, the share of unchanged runs
    with any finding, per history length 3, 5, 10, 20, 40 (target ≤ 1 at every length), and
    `fa_per_run_t3_pct` with heavy-tailed (t3) drift; `detect_pct`, a step of +25/50/100/200% on one
    endpoint caught in its first run, per history length 3, 5, 10, 20 and spread 5%, 15%; the flat
    keys `fa_per_run_max_pct`, `detect_100_at_5_pct`, `detect_50_at_10_pct`, `detect_25_at_20_pct`.

(f) The stress profile against the reference service (`loadtest_stress.py`; `--stress-only` runs
    this phase alone, for a quiet machine): the shape's steps (100 users every 30 s up to 1,000),
    run and judged as the DAG does, printing `knee_rps`, `knee_users`, `host_cpu_peak_pct` and
    `knee_check_ok`: whether the knee recomputed straight from the stats-history rows (the median
    p95 of each step's settled rows, the last step before the first failing one) agrees with the
    reported one. `--stress-max-users N` stops the steps at N users (a shorter check).

`--real-only` runs only (e) and (g), for a quiet machine. (e) records its series (level, spread,
requests) in a `noise-*.json` under the state folder; `--noise FILE` runs (g) alone on such a file
(`--trials N`: N simulated unchanged runs per history length, N/2 trials per detection cell; 1,000
by default).
`bench/noise_wide.json` is a harder set than the smoke runs here give: 8 series at 12–150 ms,
spreads of 10–30%, 100–800 requests, chosen by hand, not measured.

    .venv/bin/python bench/loadtest.py [--quick] [--stress-only | --real-only | --noise FILE]
                                       [--stress-max-users N] [--trials N]

The last line is one JSON object of the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "plugins"), str(ROOT / "include")]

from loadtest_real import bench_real, validity_as_the_dag_judges  # noqa: E402
from loadtest_stress import bench_stress  # noqa: E402
from tutormax_ops.core.config import load_settings  # noqa: E402
from tutormax_ops.core.paths import LOCUST_DIR, STATE_DIR  # noqa: E402
from tutormax_ops.devstack import stack as devstack  # noqa: E402
from tutormax_ops.loadtest.regression import AGGREGATE, Point, analyze_history, analyze_series  # noqa: E402

SETTINGS = load_settings()
CAPACITY_USERS, CAPACITY_SECONDS, CAPACITY_REPEATS = 50, 12, 2
ENDPOINTS = 20

# --- (a) harness capacity ------------------------------------------------------------------------

_IDS = json.dumps(
    {
        "tutor_ids": list(range(1, 201)),
        "student_ids": list(range(1, 201)),
        "session_ids": [],
        "tutor_subjects": {str(i): ["algebra", "physics"] for i in range(1, 201)},
    }
).encode()
_TUTORS = json.dumps(
    {"subject": "algebra", "count": 20, "tutors": [{"id": i} for i in range(1, 21)]}
).encode()


class TrivialHttp(asyncio.Protocol):
    """Keep-alive HTTP/1.1 with canned bodies: as little server work per request as Python allows."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = self.buffer[:end].decode("latin-1")
            length = next(
                (
                    int(line.split(":", 1)[1])
                    for line in head.split("\r\n")
                    if line.lower().startswith("content-length")
                ),
                0,
            )
            if len(self.buffer) < end + 4 + length:
                return
            self.buffer = self.buffer[end + 4 + length :]
            method, path = head.split(" ", 2)[:2]
            body = (
                _IDS if path.startswith("/api/ids") else _TUTORS if path.startswith("/api/tutors?") else b"{}"
            )
            status = b"201 Created" if method == "POST" else b"200 OK"
            self.transport.write(  # type: ignore[attr-defined]
                b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\nContent-Length: "
                + str(len(body)).encode() + b"\r\n\r\n" + body
            )  # fmt: skip


def serve_trivial(port: int) -> None:
    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(TrivialHttp, devstack.LOOPBACK, port)
        await server.serve_forever()

    asyncio.run(main())


def locust_requests_per_cpu_second(locustfile: Path, host: str, folder: Path) -> float:
    env = dict(os.environ, TUTORMAX_LOCUST_THINK_TIME="0,0")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(
        [sys.executable, "-m", "locust", "-f", str(locustfile), "--headless", "-u", str(CAPACITY_USERS),
         "-r", str(CAPACITY_USERS), "-t", f"{CAPACITY_SECONDS}s", "--host", host, "--only-summary",
         "--json-file", str(folder / locustfile.stem), "--exit-code-on-error", "0"],
        env=env, check=True, capture_output=True,
    )  # fmt: skip
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    entries = json.loads((folder / f"{locustfile.stem}.json").read_text())
    return sum(entry["num_requests"] for entry in entries) / cpu_s


def bench_capacity() -> float:
    port = devstack.free_port()
    server = subprocess.Popen([sys.executable, __file__, "--serve-trivial", str(port)])
    try:
        devstack.wait_until(lambda: devstack.port_accepts(port), timeout_s=20, what="trivial server")
        host = f"http://{devstack.LOOPBACK}:{port}"
        ours, minimal = [], []
        with tempfile.TemporaryDirectory() as tmp:
            for _ in range(CAPACITY_REPEATS):  # alternate, so drift in the machine hits both alike
                minimal.append(
                    locust_requests_per_cpu_second(LOCUST_DIR / "minimal_locustfile.py", host, Path(tmp))
                )
                ours.append(
                    locust_requests_per_cpu_second(LOCUST_DIR / "tutormax_locustfile.py", host, Path(tmp))
                )
    finally:
        server.terminate()
        server.wait(10)
    ratio = statistics.median(ours) / statistics.median(minimal)
    print(
        f"(a) harness capacity: ours {statistics.median(ours):,.0f} req per CPU-second, minimal "
        f"FastHttpUser {statistics.median(minimal):,.0f}: ratio {ratio:.2f} (target ≥ 0.85)"
    )
    return ratio


# --- (b) detector quality ------------------------------------------------------------------------

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _points(values: np.ndarray) -> list[Point]:
    return [Point(f"run-{i}", T0 + timedelta(days=i), float(v)) for i, v in enumerate(values)]


def _regressed(values: np.ndarray) -> bool:
    return (
        analyze_series(AGGREGATE, "p95_ms", _points(values), SETTINGS.loadtest.regression).status
        == "regression"
    )


DETECTION_TRIALS = 1000  # ±0.7 points at 95%: 200 (±1.5) could not tell 95% from 96.5%


def detection_rate(cv: float, trials: int, rng: np.random.Generator) -> float:
    detected = 0
    for _ in range(trials):
        series = np.concatenate([rng.normal(100, 100 * cv, 40), rng.normal(120, 120 * cv, 3)])
        detected += any(_regressed(series[: 41 + k]) for k in range(3))
    return detected / trials


def false_alarms_per_100(series_count: int, rng: np.random.Generator) -> float:
    alarms = runs = 0
    for _ in range(series_count):
        noise = rng.normal(100, 10, 150)
        for end in range(51, 151):
            runs += 1
            alarms += _regressed(noise[:end])
    return 100 * alarms / runs


def bench_detector() -> tuple[float, float]:
    rng = np.random.default_rng(2026)
    started = time.perf_counter()
    detect = detection_rate(0.05, DETECTION_TRIALS, rng)
    detect_cv10 = detection_rate(0.10, DETECTION_TRIALS, rng)
    false_alarms = false_alarms_per_100(20, rng)
    print(
        f"(b) detector: +20% step detected within 3 runs in {detect:.1%} of {DETECTION_TRIALS} trials at CV 5% (target ≥ 95%), "
        f"{detect_cv10:.1%} at CV 10%; {false_alarms:.2f} false alarms per 100 runs at CV 10% "
        f"(target ≤ 1), {time.perf_counter() - started:.0f} s"
    )
    return detect, false_alarms


# --- (c) analysis speed --------------------------------------------------------------------------


def bench_analysis() -> float:
    from tutormax_ops.collectors.sampling import Interval
    from tutormax_ops.loadtest.series import build_series

    rng = np.random.default_rng(7)
    names = [f"GET /api/endpoint_{index}" for index in range(ENDPOINTS)]
    history = [
        {
            "run_id": f"run-{run}",
            "started_at": T0 + timedelta(days=run),
            "p95_ms": rng.normal(40, 4),
            "error_rate": 0.0,
            "rps": rng.normal(300, 10),
            "cache_hit_rate": rng.normal(90, 1),
            "query_p95_ms": rng.normal(5, 0.5),
            "endpoints": {name: {"p95_ms": rng.normal(40, 4), "error_rate": 0.0} for name in names},
        }
        for run in range(1000)
    ]
    current = {
        AGGREGATE: {
            "p95_ms": Interval(41.0, 39.0, 44.0),
            "error_rate": Interval(0.0, 0.0, 0.1),
            "rps": Interval(301.0, None, None),
            "cache_hit_rate": Interval(90.0, None, None),
            "query_p95_ms": Interval(5.0, None, None),
        },
        **{
            name: {"p95_ms": Interval(40.0, 36.0, 47.0), "error_rate": Interval(0.0, 0.0, 3.6)}
            for name in names
        },
    }
    started = time.perf_counter()
    verdicts = analyze_history(
        build_series(history, current, "now", T0 + timedelta(days=1000)), SETTINGS.loadtest.regression
    )
    elapsed = time.perf_counter() - started
    print(
        f"(c) analysis: 1,000 runs × {ENDPOINTS} endpoints, {len(verdicts)} series in {elapsed * 1000:.0f} ms (target < 1 s)"
    )
    return elapsed


# --- (d) the baseline profile against the reference service --------------------------------------


def bench_baseline(quick: bool) -> dict[str, float | None]:
    import psycopg
    import redis

    from tutormax_ops.collectors.locust import parse_run
    from tutormax_ops.collectors.redis import cache_stats, take_sample
    from tutormax_ops.loadtest.model import RunPlan
    from tutormax_ops.loadtest.runner import run_locust

    name = "smoke" if quick else "baseline"
    profile = SETTINGS.profile(name)
    run_time = 30 if quick else profile.run_time_s
    # Under the project's state folder, which the PostgreSQL system user may traverse (a 0700 temp
    # folder it may not).
    root = STATE_DIR / "bench" / str(os.getpid())
    with devstack.running_stack(root / "stack") as stack:
        db_url = stack.endpoints.db_url
        devstack.migrate_service_schema(db_url)
        devstack.load_service_data(db_url, days=2)
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        host = stack.start_service()
        client = redis.Redis.from_url(stack.endpoints.redis_url)
        window: dict[str, object] = {}
        plan = RunPlan(name, host, profile.users, profile.spawn_rate, run_time, 0, "never", "manual")
        folder = root / "run"
        folder.mkdir(parents=True, exist_ok=True)
        outcome = run_locust(
            plan,
            SETTINGS.loadtest,
            folder,
            on_window_open=lambda: window.setdefault("redis", take_sample(client)),
        )
        cache = cache_stats(client, previous=window.get("redis") or take_sample(client))
        run = parse_run(
            csv_prefix=folder / "locust",
            json_path=folder / "locust.json",
            html_path=folder / "locust.html",
            log_text=(folder / "locust.log").read_text(errors="replace"),
        )
    validity = validity_as_the_dag_judges(SETTINGS, run, outcome, run_time, host_check=True)
    shutil.rmtree(root, ignore_errors=True)
    figures = {
        "p95_ms": run.aggregate.p95_ms,
        "rps": run.aggregate.steady_rps,
        "error_rate": run.aggregate.error_rate_percent,
        "cache_hit_rate": cache.window_hit_rate_percent,
    }
    targets = SETTINGS.targets_for(name)
    print(
        f"(d) {name} profile, {plan.users} users for {run_time} s (stopped by {outcome.stopped_by or 'nobody'}, "
        f"{'valid' if validity.valid else 'INVALID: ' + '; '.join(validity.reasons)}): "
        f"p95 {figures['p95_ms']} ms (target < {targets.p95_api_ms:g}), steady {figures['rps']:.1f} req/s "
        f"(target ≥ {targets.throughput_rps:g}), errors {figures['error_rate']:.2f}% (target < "
        f"{targets.error_rate_percent:g}), cache hit rate {figures['cache_hit_rate']:.1f}% "
        f"(target > {targets.cache_hit_rate_percent:g})"
    )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke-sized (d)")
    parser.add_argument("--stress-only", action="store_true", help="only (f), the stress profile")
    parser.add_argument("--real-only", action="store_true", help="only (e) and (g), the real runs")
    parser.add_argument("--noise", type=Path, metavar="FILE", help="only (g), on the series recorded in FILE")
    parser.add_argument(
        "--trials", type=int, default=1000, help="(g)'s simulated runs per cell (detection: half as many)"
    )
    parser.add_argument("--stress-max-users", type=int, metavar="N", help="stop (f)'s steps at N users")
    parser.add_argument("--serve-trivial", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_trivial:
        serve_trivial(args.serve_trivial)
        return
    if args.stress_only:
        print(json.dumps(bench_stress(SETTINGS, args.stress_max_users)))
        return
    if args.real_only or args.noise:
        print(json.dumps(bench_real(SETTINGS, args.trials, args.noise)))
        return
    capacity = bench_capacity()
    detect, false_alarms = bench_detector()
    analysis_s = bench_analysis()
    baseline = bench_baseline(args.quick)
    stress = bench_stress(SETTINGS, args.stress_max_users)
    real = bench_real(SETTINGS, args.trials)
    print(
        json.dumps(
            {
                **real,
                **stress,
                "capacity_ratio": round(capacity, 3),
                "detect_rate": round(detect, 3),
                "false_alarms_per_100": round(false_alarms, 2),
                "analysis_s": round(analysis_s, 3),
                "baseline_p95_ms": baseline["p95_ms"],
                "baseline_rps": round(baseline["rps"], 1) if baseline["rps"] is not None else None,
                "baseline_error_rate": round(baseline["error_rate"], 3)
                if baseline["error_rate"] is not None
                else None,
                "baseline_cache_hit_rate": (
                    round(baseline["cache_hit_rate"], 1) if baseline["cache_hit_rate"] is not None else None
                ),
            }
        )
    )


if __name__ == "__main__":
    main()
