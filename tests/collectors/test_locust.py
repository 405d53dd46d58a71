"""Locust parser: unit tests on hand-made histograms and files, then real headless runs.

Locust is run only as a CLI subprocess (`import locust` gevent-patches this process), against a
`python -m http.server` started here: `/` answers 200 and `/missing` 404 (counted as failures).
"""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tutormax_ops.collectors.locust import (
    PERCENTILE_ROUNDING,
    cpu_warning_raised,
    merge_histograms,
    parse_run,
    percentile,
)
from tutormax_ops.core.paths import LOCUST_DIR
from tutormax_ops.devstack import stack as devstack
from tutormax_ops.loadtest.validity import validate_run

LOCUST = Path(sys.executable).with_name("locust")
USERS, SPAWN_RATE, RUN_S = 4, 1, 12  # 3 s of ramp-up, then a steady state a busy machine cannot squeeze out
LOCUSTFILE = LOCUST_DIR / "two_endpoint_locustfile.py"
HISTORY_HEADER = ["Timestamp", "User Count", "Type", "Name", "Total Request Count"]


def expanded_percentile(histogram: dict[int, int], fraction: float) -> int:
    """An independent formulation: the value at rank int(n * fraction) of the sorted raw times."""
    ordered = sorted(value for value, count in histogram.items() for _ in range(count))
    return ordered[min(int(len(ordered) * fraction), len(ordered) - 1)]


# --- pure functions ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("histogram", "fraction", "expected"),
    [
        ({1: 50, 2: 40, 3: 9, 100: 1}, 0.50, 2),
        ({1: 50, 2: 40, 3: 9, 100: 1}, 0.90, 3),
        ({1: 50, 2: 40, 3: 9, 100: 1}, 0.95, 3),
        ({1: 50, 2: 40, 3: 9, 100: 1}, 0.99, 100),
        ({1: 50, 2: 40, 3: 9, 100: 1}, 1.00, 100),
        ({200: 1}, 0.95, 200),
        ({4: 3, 7: 1}, 0.50, 4),
        ({}, 0.95, None),
    ],
)
def test_percentile_follows_locust(histogram: dict[int, int], fraction: float, expected: int | None) -> None:
    assert percentile(histogram, fraction) == expected
    if histogram:
        assert percentile(histogram, fraction) == expanded_percentile(histogram, fraction)


def test_merged_histograms_add_bucket_counts() -> None:
    assert merge_histograms([{1: 2, 10: 1}, {1: 3, 20: 4}, {}]) == {1: 5, 10: 1, 20: 4}


def test_percentile_rounding_is_stated() -> None:
    assert "1 ms steps below 100 ms" in PERCENTILE_ROUNDING
    assert "10 ms steps from 100 to 999 ms" in PERCENTILE_ROUNDING


@pytest.mark.parametrize(
    ("log", "warned"),
    [
        ("[2026-11-28 08:31:44] vm/INFO/locust.main: Starting Locust 2.47.0", False),
        ("vm/WARNING/root: CPU usage above 90%! This may constrain your throughput", True),
        ("vm/WARNING/locust.runners: CPU usage threshold was exceeded on workers during the test!", True),
        ("vm/WARNING/locust.runners: Worker w1 (index 0) exceeded cpu threshold", True),
    ],
)
def test_cpu_warning_in_the_log(log: str, warned: bool) -> None:
    assert cpu_warning_raised(log) is warned


def write_hand_made_run(folder: Path) -> tuple[Path, Path]:
    """Ramp-up 0→2→4 users, a 3-second plateau at 4, ramp-down to 2; one endpoint appears late."""
    entries = [
        {
            "name": "/a",
            "method": "GET",
            "start_time": 1_000.0,
            "last_request_timestamp": 1_006.5,
            "num_requests": 10,
            "num_none_requests": 0,
            "num_failures": 1,
            "total_response_time": 100.0,
            "max_response_time": 31.4,
            "min_response_time": 2.2,
            "response_times": {"2": 4, "5": 5, "31": 1},
        },
        {
            "name": "/b",
            "method": "POST",
            "start_time": 1_000.0,
            "last_request_timestamp": 1_005.0,
            "num_requests": 4,
            "num_none_requests": 1,
            "num_failures": 0,
            "total_response_time": 300.0,
            "max_response_time": 150.2,
            "min_response_time": 50.0,
            "response_times": {"50": 1, "100": 1, "150": 1},
        },
    ]
    rows = [
        (1_000, 0, "", "Aggregated", 0),
        (1_001, 2, "GET", "/a", 1),
        (1_001, 2, "", "Aggregated", 1),
        (1_002, 4, "GET", "/a", 3),
        (1_002, 4, "", "Aggregated", 3),
        (1_003, 4, "GET", "/a", 5),
        (1_003, 4, "POST", "/b", 2),
        (1_003, 4, "", "Aggregated", 7),
        (1_005, 4, "GET", "/a", 8),
        (1_005, 4, "POST", "/b", 3),
        (1_005, 4, "", "Aggregated", 11),
        (1_006, 2, "GET", "/a", 10),
        (1_006, 2, "POST", "/b", 4),
        (1_006, 2, "", "Aggregated", 14),
    ]
    (folder / "run.json").write_text(json.dumps(entries))
    with (folder / "run_stats_history.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HISTORY_HEADER)
        writer.writerows(rows)
    return folder / "run", folder / "run.json"


def test_hand_made_run(tmp_path: Path) -> None:
    prefix, json_path = write_hand_made_run(tmp_path)
    run = parse_run(csv_prefix=prefix, json_path=json_path, html_path=tmp_path / "absent.html")

    a, b = run.endpoints
    assert (a.method, a.name, a.requests, a.failures, a.error_rate_percent) == ("GET", "/a", 10, 1, 10.0)
    assert (a.p50_ms, a.p90_ms, a.max_ms, a.min_ms, a.avg_ms) == (5, 31, 31.4, 2.2, 10.0)
    assert (b.requests, b.avg_ms) == (4, 100.0)  # the request without a response time has no timing
    assert run.aggregate.requests == 14 and run.aggregate.failures == 1
    assert run.aggregate.p99_ms == 150 and run.aggregate.max_ms == 150.2

    # The window is the plateau at 4 users: from 1002 (3 requests) to 1005 (11), ramp-up and -down out.
    window = run.window
    assert window is not None
    assert (window.start, window.end) == (
        datetime.fromtimestamp(1_002, UTC),
        datetime.fromtimestamp(1_005, UTC),
    )
    assert (window.users, window.requests, window.duration_s) == (4, 8, 3.0)
    assert run.aggregate.steady_rps == pytest.approx(8 / 3)
    assert a.steady_rps == pytest.approx(5 / 3)
    assert b.steady_rps == pytest.approx(3 / 3)  # no row at the window's start: it had 0 requests then
    assert run.peak_users == 4
    assert run.duration_s == pytest.approx(6.5)
    assert not run.html_report_present


def test_the_services_own_times_are_merged_per_endpoint_beside_locusts(tmp_path: Path) -> None:
    """server_times-<pid>.json, one per process that ran users (include/locust/server_time.py)."""
    prefix, json_path = write_hand_made_run(tmp_path)
    (tmp_path / "server_times-11.json").write_text(json.dumps({"GET /a": {"1": 6, "4": 2}}))
    (tmp_path / "server_times-12.json").write_text(json.dumps({"GET /a": {"20": 2}, "POST /b": {"40": 3}}))
    run = parse_run(csv_prefix=prefix, json_path=json_path)
    a, b = run.endpoints
    assert (a.server_requests, a.server_p95_ms, a.p95_ms) == (10, 20.0, 31)  # Locust's rank rule on 6+2+2
    assert (b.server_requests, b.server_p95_ms) == (3, 40.0)
    assert run.aggregate.server_requests == 13 and run.aggregate.server_p95_ms == 40.0
    for path in tmp_path.glob("server_times-*.json"):
        path.unlink()
    assert parse_run(csv_prefix=prefix, json_path=json_path).aggregate.server_p95_ms is None


def test_validity_reasons(tmp_path: Path) -> None:
    prefix, json_path = write_hand_made_run(tmp_path)
    (tmp_path / "report.html").write_text("<html></html>")
    run = parse_run(csv_prefix=prefix, json_path=json_path, html_path=tmp_path / "report.html")

    assert validate_run(run, planned_duration_s=7).valid
    assert validate_run(run, planned_duration_s=7, cpu_samples=[95, 50, 40, 30]).valid  # 25% is tolerated

    bad = validate_run(
        replace(run, html_report_present=False, cpu_warning=True),
        planned_duration_s=60,
        cpu_samples=[95, 97, 99, 40],
    )
    assert not bad.valid
    assert len(bad.reasons) == 4
    assert "HTML report is missing" in bad.reasons[0]
    assert "lasted 6.5 s of the planned 60 s" in bad.reasons[1]
    assert "CPU warning" in bad.reasons[2]
    assert "above 90% in 75% of 4 samples" in bad.reasons[3]


# --- real locust runs --------------------------------------------------------------------------


@dataclass(frozen=True)
class RealRun:
    folder: Path
    log: str
    returncode: int


@pytest.fixture(scope="module")
def http_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("site")
    (root / "index.html").write_text("<h1>TutorMax</h1>")
    port = devstack.free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "http.server",
            str(port),
            "--bind",
            devstack.LOOPBACK,
            "--directory",
            str(root),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    devstack.wait_until(lambda: devstack.port_accepts(port), timeout_s=15, what="http.server")
    yield f"http://{devstack.LOOPBACK}:{port}"
    server.terminate()
    server.wait(10)


def start_locust(folder: Path, host: str, run_s: int) -> subprocess.Popen[str]:
    folder.mkdir(parents=True, exist_ok=True)
    argv = [str(LOCUST), "-f", str(LOCUSTFILE), "--headless", "--host", host]
    argv += ["-u", str(USERS), "-r", str(SPAWN_RATE), "-t", f"{run_s}s", "--exit-code-on-error", "0"]
    argv += ["--csv", "run", "--csv-full-history", "--json-file", "run", "--html", "run.html"]
    return subprocess.Popen(
        argv, cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )


def history_rows(folder: Path) -> int:
    path = folder / "run_stats_history.csv"
    return len(path.read_text().splitlines()) if path.exists() else 0


@pytest.fixture(scope="module")
def real_runs(http_server: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, RealRun]:
    """A complete run, and alongside it one stopped by SIGTERM a few seconds into its planned 30.

    The second starts once the first is running, and is signalled once it is running too: start-up
    is the CPU-heavy part, and a signal before locust has installed its handlers just kills it.
    """
    base = tmp_path_factory.mktemp("locust")
    complete = start_locust(base / "complete", http_server, RUN_S)
    devstack.wait_until(
        lambda: history_rows(base / "complete") > 1, timeout_s=30, what="the first locust run"
    )
    killed = start_locust(base / "killed", http_server, 30)
    devstack.wait_until(lambda: history_rows(base / "killed") > 6, timeout_s=30, what="the second locust run")
    killed.send_signal(signal.SIGTERM)
    runs = {}
    for name, process in (("complete", complete), ("killed", killed)):
        log, _ = process.communicate(timeout=RUN_S + 30)
        runs[name] = RealRun(base / name, log, process.returncode)
    return runs


def parse(run: RealRun):
    return parse_run(
        csv_prefix=run.folder / "run",
        json_path=run.folder / "run.json",
        html_path=run.folder / "run.html",
        log_text=run.log,
    )


@pytest.mark.e2e
def test_real_run_totals_equal_the_json(real_runs: dict[str, RealRun]) -> None:
    real = real_runs["complete"]
    assert real.returncode == 0, real.log[-2000:]
    entries = {
        (entry["method"], entry["name"]): entry
        for entry in json.loads((real.folder / "run.json").read_text())
    }
    run = parse(real)

    assert {(endpoint.method, endpoint.name) for endpoint in run.endpoints} == set(entries)
    for endpoint in run.endpoints:
        entry = entries[(endpoint.method, endpoint.name)]
        assert endpoint.requests == entry["num_requests"] > 0
        assert endpoint.failures == entry["num_failures"]
    assert run.aggregate.requests == sum(entry["num_requests"] for entry in entries.values())
    by_name = {endpoint.name: endpoint for endpoint in run.endpoints}
    assert by_name["/"].error_rate_percent == 0
    assert by_name["/missing"].error_rate_percent == 100
    assert run.aggregate.error_rate_percent == pytest.approx(
        100 * by_name["/missing"].requests / run.aggregate.requests
    )

    # The CSV snapshot is written once a second: it never holds more than the JSON.
    with (real.folder / "run_stats.csv").open(newline="") as handle:
        csv_total = next(
            int(row["Request Count"]) for row in csv.DictReader(handle) if row["Name"] == "Aggregated"
        )
    assert csv_total <= run.aggregate.requests


def locust_bucket(ms: float) -> int:
    """The bucket Locust files a response time under (see PERCENTILE_ROUNDING): 357.04 ms is 360."""
    digits = 0 if ms < 100 else -1 if ms < 1000 else -2 if ms < 10_000 else -3
    return int(round(ms, digits))


@pytest.mark.e2e
def test_real_run_percentiles_are_consistent(real_runs: dict[str, RealRun]) -> None:
    real = real_runs["complete"]
    entries = json.loads((real.folder / "run.json").read_text())
    histograms = {
        entry["name"]: {int(bucket): count for bucket, count in entry["response_times"].items()}
        for entry in entries
    }
    run = parse(real)

    merged = merge_histograms(histograms.values())
    assert sum(merged.values()) == run.aggregate.requests
    for metrics, histogram in [*((e, histograms[e.name]) for e in run.endpoints), (run.aggregate, merged)]:
        figures = [metrics.p50_ms, metrics.p90_ms, metrics.p95_ms, metrics.p99_ms]
        assert figures == [expanded_percentile(histogram, f) for f in (0.5, 0.9, 0.95, 0.99)]
        assert figures == sorted(figures)
        assert metrics.min_ms <= metrics.avg_ms <= metrics.max_ms
        assert figures[-1] <= locust_bucket(metrics.max_ms)  # the p99 bucket never lies above the max's


@pytest.mark.e2e
def test_real_run_steady_window_excludes_ramp_up(real_runs: dict[str, RealRun]) -> None:
    real = real_runs["complete"]
    run = parse(real)
    window = run.window
    assert window is not None
    assert window.users == run.peak_users == USERS

    with (real.folder / "run_stats_history.csv").open(newline="") as handle:
        aggregate_rows = [row for row in csv.DictReader(handle) if row["Name"] == "Aggregated"]
    ramp = [row for row in aggregate_rows if int(row["Timestamp"]) < window.start.timestamp()]
    assert ramp and all(int(row["User Count"]) < USERS for row in ramp)
    assert window.start.timestamp() - int(aggregate_rows[0]["Timestamp"]) >= (USERS - 1) / SPAWN_RATE - 1
    assert window.duration_s >= 2

    # Throughput: the endpoints' steady rates add up to the aggregate's, which the ramp-up does not drag down.
    assert sum(endpoint.steady_rps for endpoint in run.endpoints) == pytest.approx(window.rps)
    assert window.rps > run.aggregate.requests / run.duration_s

    # The JSON's per-second counts over the same window agree within one second of traffic.
    per_second: dict[int, int] = {}
    for entry in json.loads((real.folder / "run.json").read_text()):
        for second, count in entry["num_reqs_per_sec"].items():
            per_second[int(second)] = per_second.get(int(second), 0) + count
    start, end = int(window.start.timestamp()), int(window.end.timestamp())
    in_window = sum(count for second, count in per_second.items() if start < second <= end)
    assert abs(in_window - window.requests) <= 1.5 * max(per_second.values())


@pytest.mark.e2e
def test_real_run_is_valid(real_runs: dict[str, RealRun]) -> None:
    run = parse(real_runs["complete"])
    assert run.html_report_present
    assert not run.cpu_warning  # locust samples its CPU every 10 s and its first reading is 0
    assert validate_run(run, planned_duration_s=RUN_S).valid
    saturated = validate_run(run, planned_duration_s=RUN_S, cpu_samples=[99.0] * 8)
    assert not saturated.valid and "CPU" in saturated.reasons[0]


@pytest.mark.e2e
def test_sigterm_run_looks_successful_but_is_invalid(real_runs: dict[str, RealRun]) -> None:
    real = real_runs["killed"]
    assert real.returncode == 0  # the trap: a killed run exits 0
    run = parse(real)
    assert run.aggregate.requests > 0  # CSV and JSON are still written
    assert not run.html_report_present
    verdict = validate_run(run, planned_duration_s=30)
    assert not verdict.valid
    assert any("HTML report is missing" in reason for reason in verdict.reasons)
    assert any("of the planned 30 s" in reason for reason in verdict.reasons)
