"""The judged figures: a run's per-second records cut to its steady state, on hand-built files whose
every figure is known. (The real recorder, in real Locust processes: tests/loadtest/test_steady_state.py.)"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tutormax_ops.collectors.locust import parse_run
from tutormax_ops.collectors.locust_seconds import STEADY_STATE, WHOLE_RUN, read_seconds
from tutormax_ops.collectors.sampling import quantile_interval, rate_interval

START = 1_000  # the run's first request, epoch seconds
SLOW, FAST, LAST = 500, 10, 990  # ms: the ramp-up's, the steady state's, the final partial second's


def second(requests: int, ms: int, *, failures: int = 0, server_ms: int | None = None) -> dict:
    return {
        "requests": requests,
        "failures": failures,
        "sum_ms": float(requests * ms),
        "min_ms": float(ms),
        "max_ms": float(ms),
        "client": {str(ms): requests},
        "server": {str(server_ms): requests} if server_ms is not None else {},
    }


def write_run(folder: Path, *, with_seconds: bool = True) -> tuple[Path, Path]:
    """Seconds 1000–1003 slow (ramp-up and warm-up), 1004–1009 fast, 1010 the partial last second;
    `GET /a` from two processes, `POST /b` only before the steady state. Locust's JSON holds the
    same requests for the whole run, as Locust would."""
    one = {str(s): {"GET /a": second(10, SLOW, server_ms=SLOW - 20)} for s in range(START, START + 4)}
    one |= {str(s): {"GET /a": second(20, FAST, server_ms=8)} for s in range(START + 4, START + 10)}
    one[str(START + 10)] = {"GET /a": second(5, LAST, server_ms=LAST - 20)}
    two = {str(START + 1): {"POST /b": second(4, SLOW, failures=4)}}
    two |= {str(s): {"GET /a": second(10, FAST + 2, failures=1)} for s in range(START + 4, START + 10)}
    entries = [
        {
            "name": "/a",
            "method": "GET",
            "start_time": float(START),
            "last_request_timestamp": START + 10.5,
            "num_requests": 40 + 120 + 5 + 60,
            "num_none_requests": 0,
            "num_failures": 6,
            "total_response_time": 40.0 * SLOW + 120 * FAST + 5 * LAST + 60 * (FAST + 2),
            "max_response_time": float(LAST),
            "min_response_time": float(FAST),
            "response_times": {str(SLOW): 40, str(FAST): 120, str(LAST): 5, str(FAST + 2): 60},
        },
        {
            "name": "/b",
            "method": "POST",
            "start_time": START + 1.0,
            "last_request_timestamp": START + 1.5,
            "num_requests": 4,
            "num_none_requests": 0,
            "num_failures": 4,
            "total_response_time": 4.0 * SLOW,
            "max_response_time": float(SLOW),
            "min_response_time": float(SLOW),
            "response_times": {str(SLOW): 4},
        },
    ]
    (folder / "run.json").write_text(json.dumps(entries))
    with (folder / "run_stats_history.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Timestamp", "User Count", "Type", "Name", "Total Request Count"])
        writer.writerows([(START, 2, "", "Aggregated", 0), (START + 10, 4, "", "Aggregated", 229)])
    if with_seconds:
        (folder / "seconds-11.json").write_text(json.dumps({"seconds": one}))
        (folder / "seconds-12.json").write_text(json.dumps({"seconds": two}))
    return folder / "run", folder / "run.json"


def test_the_judged_figures_are_the_steady_seconds_only(tmp_path: Path) -> None:
    prefix, json_path = write_run(tmp_path)
    run = parse_run(csv_prefix=prefix, json_path=json_path, steady_after_s=3.5)
    judged = run.judged_figures

    # From the first whole second after 3.5 s to the last second, which is partial and left out.
    assert judged.basis == STEADY_STATE
    assert judged.start.timestamp() == START + 4 and judged.end.timestamp() == START + 10
    assert judged.seconds == 6 and judged.excluded_s == 4
    a, b = judged.endpoints
    assert (a.method, a.name, b.method, b.name) == ("GET", "/a", "POST", "/b")
    # Both processes' requests of those seconds, and nothing else.
    assert (a.requests, a.failures) == (6 * 30, 6)
    assert (a.p50_ms, a.p95_ms, a.p99_ms, a.min_ms, a.max_ms) == (FAST, FAST + 2, FAST + 2, FAST, FAST + 2)
    assert a.avg_ms == pytest.approx((120 * FAST + 60 * (FAST + 2)) / 180)
    assert a.steady_rps == pytest.approx(30)
    interval = quantile_interval({FAST: 120, FAST + 2: 60})
    assert (a.p95_low_ms, a.p95_high_ms) == (interval.low, interval.high)
    errors = rate_interval(6, 180)
    assert (a.error_rate_percent, a.error_rate_low, a.error_rate_high) == (
        errors.value,
        errors.low,
        errors.high,
    )
    assert (a.server_p95_ms, a.server_requests) == (8.0, 120)  # one process saw the header
    # An endpoint only called during the ramp-up stays listed, with nothing to judge.
    assert (b.requests, b.p95_ms, b.error_rate_percent, b.steady_rps) == (0, None, None, 0)
    assert judged.aggregate.requests == 180 and judged.aggregate.p95_ms == FAST + 2
    assert judged.aggregate.error_rate_percent == pytest.approx(100 * 6 / 180)

    # The whole run's figures stay as Locust's JSON gives them, ramp-up and last second included.
    whole_a = run.endpoints[0]
    assert whole_a.requests == 225 and whole_a.p95_ms == SLOW and run.aggregate.requests == 229
    assert run.aggregate.error_rate_percent == pytest.approx(100 * 10 / 229)
    # Its server p95 comes from the same records, over every second.
    assert whole_a.server_p95_ms == SLOW - 20 and whole_a.server_requests == 40 + 120 + 5


def test_without_per_second_records_the_whole_run_is_judged_and_says_so(tmp_path: Path) -> None:
    prefix, json_path = write_run(tmp_path, with_seconds=False)
    run = parse_run(csv_prefix=prefix, json_path=json_path, steady_after_s=3.5)
    assert run.judged_figures.basis == WHOLE_RUN
    assert "no per-second records" in run.judged_figures.note
    assert run.judged_figures.aggregate == run.aggregate and run.judged_figures.endpoints == run.endpoints


def test_no_steady_state_asked_or_none_reached_judges_the_whole_run(tmp_path: Path) -> None:
    prefix, json_path = write_run(tmp_path)
    unasked = parse_run(csv_prefix=prefix, json_path=json_path).judged_figures
    assert unasked.basis == WHOLE_RUN and unasked.note == "no steady state was asked for"
    late = parse_run(csv_prefix=prefix, json_path=json_path, steady_after_s=10).judged_figures
    assert (
        late.basis == WHOLE_RUN and "no request completed in a whole second after the first 10 s" in late.note
    )


def test_records_merge_over_processes_and_keep_the_shapes_start(tmp_path: Path) -> None:
    write_run(tmp_path)
    (tmp_path / "seconds-13.json").write_text(json.dumps({"shape_started_at": START - 0.5, "seconds": {}}))
    recorded = read_seconds(tmp_path)
    assert recorded.shape_started_at == START - 0.5
    assert recorded.client_histograms()[START + 4] == {FAST: 20, FAST + 2: 10}
    assert recorded.client_histograms()[START + 1] == {SLOW: 14}
    (tmp_path / "old").mkdir()
    assert read_seconds(tmp_path / "old") is None  # a run from before the records
