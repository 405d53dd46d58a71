"""Per-endpoint and aggregate metrics from one headless Locust run's output files.

This module only reads files: it never imports locust, which monkey-patches the process with gevent
and deadlocks after `dag.test()` (see the notes on Airflow 3). Locust runs as a CLI subprocess:

    locust --headless -u N -r R -t 60s --csv PREFIX --csv-full-history --json-file NAME --html FILE

Which file answers which question, and why:
- Totals and percentiles come from `NAME.json`. Its per-endpoint counts are exact and it carries each
  endpoint's raw `response_times` histogram. The CSV files are snapshots written once a second and
  can miss the last second, so their totals run short. The JSON has no aggregate row: the aggregate
  merges the endpoints' histograms.
- Throughput comes from `PREFIX_stats_history.csv` over the steady-state window only. The
  `Requests/s` column of `PREFIX_stats.csv` is averaged over the whole run, ramp-up included.
- The judged figures (`LocustRun.judged`) come from the per-second records every process writes
  (`seconds-<pid>.json`, see `collectors.locust_seconds`): the same figures, over the steady state
  only, since the ramp-up and the warm-up say nothing of the service at its planned load. Without
  them (a run from before they were kept), the whole run is judged, and says so.
- The HTML report is only checked for presence. SIGTERM ends locust with exit code 0 and writes no
  HTML report, so a killed run otherwise looks like a success.
- The CPU warning comes from the captured log text.

Percentile precision: Locust rounds every response time into a bucket before counting it (1 ms
steps below 100 ms, 10 ms steps from 100 to 999 ms, 100 ms steps up to 9,999 ms, then 1 s steps;
half-way values go to the even neighbour). A percentile is therefore a bucket value: a true p95 of
196 ms reports as 200 ms, so a "p95 < 200 ms" target fails from about 195 ms. Min, max and average
are exact.
"""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tutormax_ops.collectors.locust_seconds import Judged

PERCENTILE_ROUNDING = (
    "Percentiles are Locust bucket values: 1 ms steps below 100 ms, 10 ms steps from 100 to 999 ms, "
    "100 ms steps up to 9,999 ms; a true p95 of 196 ms reports as 200 ms. Min, max and mean are exact."
)
AGGREGATE_NAME = "Aggregated"
# The warnings locust logs when a generator's CPU passes 90%: the local runner's, and the master's
# about its workers (once in total, and once per worker).
CPU_WARNING_PATTERN = re.compile(
    r"CPU usage above \d+%|CPU usage threshold was exceeded|exceeded cpu threshold", re.IGNORECASE
)
HISTORY_SUFFIX = "_stats_history.csv"


@dataclass(frozen=True)
class EndpointMetrics:
    """One endpoint (method + name as the locustfile named the request), or the aggregate.

    Counts, percentiles, min, max and mean cover the whole run (the JSON histogram cannot be
    windowed); `steady_rps` covers the steady-state window only.
    """

    method: str
    name: str
    requests: int
    failures: int
    error_rate_percent: float | None
    avg_ms: float | None
    min_ms: float | None
    p50_ms: int | None
    p90_ms: int | None
    p95_ms: int | None
    p99_ms: int | None
    max_ms: float | None
    steady_rps: float | None
    # The p95's and the error rate's bounds at the parse's confidence (`collectors.sampling`); a None
    # bound is one this sample size cannot give.
    p95_low_ms: float | None = None
    p95_high_ms: float | None = None
    error_rate_low: float | None = None
    error_rate_high: float | None = None
    # The service's own p95 (its X-Response-Time header, the seed's definition), where it sends one.
    server_p95_ms: float | None = None
    server_requests: int = 0


@dataclass(frozen=True)
class SteadyWindow:
    """The history rows at the peak user count: from the first row at the plateau to the last."""

    start: datetime
    end: datetime
    duration_s: float
    users: int
    requests: int
    rps: float


@dataclass(frozen=True)
class LocustRun:
    # The whole run's figures, ramp-up and warm-up included; the verdicts use `judged`.
    endpoints: tuple[EndpointMetrics, ...]
    aggregate: EndpointMetrics
    window: SteadyWindow | None  # None when the plateau lasted less than two history rows
    started_at: datetime | None
    ended_at: datetime | None
    duration_s: float | None
    peak_users: int
    html_report_present: bool
    cpu_warning: bool
    percentile_rounding: str = PERCENTILE_ROUNDING
    # Requests completed in each whole second of the steady window (JSON `num_reqs_per_sec`, all
    # endpoints), as (epoch second, count), seconds without any included: what a stall shows in.
    completed_per_second: tuple[tuple[int, int], ...] = ()
    duration_source: str = "requests"  # "locust log": its timer's start to its stop line
    judged: Judged | None = None  # parse_run always sets it (see `judged_figures`)

    @property
    def judged_figures(self) -> Judged:
        """What the verdicts use: `judged`, else (a run built by hand) the whole run's figures."""
        from tutormax_ops.collectors.locust_seconds import WHOLE_RUN, Judged

        return self.judged or Judged(WHOLE_RUN, self.endpoints, self.aggregate, note="not windowed")


def percentile(histogram: Mapping[int, int], percent: float) -> int | None:
    """The response time `percent` (0–1) of the requests finished within, computed as Locust does
    (`locust.stats.calculate_response_time_percentile`), so figures match its own reports."""
    total = sum(histogram.values())
    if total == 0:
        return None
    within = int(total * percent)
    processed = 0
    # Walk down from the slowest bucket until no more than `within` requests remain below it.
    for response_time in sorted(histogram, reverse=True):
        processed += histogram[response_time]
        if total - processed <= within:
            break
    return response_time


def merge_histograms(histograms: Iterable[Mapping[int, int]]) -> dict[int, int]:
    merged: Counter[int] = Counter()
    for histogram in histograms:
        merged.update(histogram)
    return dict(merged)


def cpu_warning_raised(log_text: str) -> bool:
    return CPU_WARNING_PATTERN.search(log_text) is not None


def parse_run(
    *,
    csv_prefix: Path | str,
    json_path: Path | str,
    html_path: Path | str | None = None,
    log_text: str = "",
    confidence: float = 0.95,
    steady_after_s: float | None = None,
) -> LocustRun:
    """Parse one run: `csv_prefix` as given to `--csv`, `json_path` the file `--json-file` wrote
    (locust appends `.json`), `html_path` as given to `--html`, `log_text` locust's captured output;
    the p95 and error-rate bounds at `confidence`. `steady_after_s` is when the steady state begins,
    counted from the run's first request (`RunPlan.measure_after_s`: all users spawned, plus the
    warm-up): the judged figures cover the per-second records from then on; None judges the whole
    run."""
    from tutormax_ops.collectors.locust_seconds import judge_steady_state, legacy_server_times, read_seconds

    entries = json.loads(Path(json_path).read_text())
    history = _read_history(Path(f"{csv_prefix}{HISTORY_SUFFIX}"))
    window = _steady_window(history)
    steady = _steady_rps(history, window)
    keyed = sorted(((_endpoint(entry), entry) for entry in entries), key=lambda pair: pair[0][::-1])
    per_second = read_seconds(Path(json_path).parent)
    server = per_second.server_histograms() if per_second else legacy_server_times(Path(json_path).parent)
    endpoints = tuple(
        _with_server(
            _metrics(method, name, [entry], steady.get((method, name)), confidence),
            server.get(f"{method} {name}", {}),
        )
        for (method, name), entry in keyed
    )
    aggregate = _with_server(
        _metrics("", AGGREGATE_NAME, entries, window.rps if window else None, confidence),
        merge_histograms(server.values()),
    )
    started, ended = _run_span(entries, history)
    duration, source = _log_span(log_text)
    if duration is None and started and ended:
        duration, source = (ended - started).total_seconds(), "requests"
    html = Path(html_path) if html_path else None
    judged = judge_steady_state(
        per_second, steady_after_s, started, endpoints, aggregate, confidence=confidence
    )
    return LocustRun(
        endpoints=endpoints,
        aggregate=aggregate,
        window=window,
        started_at=started,
        ended_at=ended,
        duration_s=duration,
        peak_users=max((row.users for row in history if row.is_aggregate), default=0),
        html_report_present=html is not None and html.is_file() and html.stat().st_size > 0,
        cpu_warning=cpu_warning_raised(log_text),
        completed_per_second=_completed_per_second(entries, window),
        duration_source=source,
        judged=judged,
    )


@dataclass(frozen=True)
class _HistoryRow:
    timestamp: int
    users: int
    method: str
    name: str
    total_requests: int

    @property
    def is_aggregate(self) -> bool:
        return self.name == AGGREGATE_NAME and not self.method


def _read_history(path: Path) -> list[_HistoryRow]:
    with path.open(newline="") as handle:
        return [
            _HistoryRow(
                timestamp=int(row["Timestamp"]),
                users=int(row["User Count"]),
                method=row["Type"],
                name=endpoint_name(row["Type"], row["Name"]),
                total_requests=int(row["Total Request Count"]),
            )
            for row in csv.DictReader(handle)
        ]


def _steady_window(history: Sequence[_HistoryRow]) -> SteadyWindow | None:
    """Rows after the user count reached its peak, while it stays there: ramp-up (and any ramp-down)
    is excluded. Throughput is the growth of the cumulative request count across the window."""
    aggregate = [row for row in history if row.is_aggregate]
    peak = max((row.users for row in aggregate), default=0)
    if peak == 0:
        return None
    first = next(index for index, row in enumerate(aggregate) if row.users == peak)
    last = first
    while last + 1 < len(aggregate) and aggregate[last + 1].users == peak:
        last += 1
    start, end = aggregate[first], aggregate[last]
    seconds = end.timestamp - start.timestamp
    if seconds <= 0:
        return None
    requests = end.total_requests - start.total_requests
    return SteadyWindow(
        start=_utc(start.timestamp),
        end=_utc(end.timestamp),
        duration_s=float(seconds),
        users=peak,
        requests=requests,
        rps=requests / seconds,
    )


def _steady_rps(history: Sequence[_HistoryRow], window: SteadyWindow | None) -> dict[tuple[str, str], float]:
    """Per-endpoint throughput over the window, from the rows `--csv-full-history` adds."""
    if window is None:
        return {}
    start, end = int(window.start.timestamp()), int(window.end.timestamp())
    at_start: dict[tuple[str, str], int] = {}
    at_end: dict[tuple[str, str], int] = {}
    for row in history:
        if row.is_aggregate:
            continue
        key = (row.method, row.name)
        if row.timestamp == start:
            at_start[key] = row.total_requests
        elif row.timestamp == end:
            at_end[key] = row.total_requests
    # An endpoint first requested inside the window has no row at its start: it had 0 requests then.
    return {key: (count - at_start.get(key, 0)) / window.duration_s for key, count in at_end.items()}


def _endpoint(entry: Mapping[str, Any]) -> tuple[str, str]:
    """(method, name), as the history CSV's Type and Name columns spell them."""
    method = str(entry.get("method") or "")
    return method, endpoint_name(method, str(entry["name"]))


def endpoint_name(method: str, name: str) -> str:
    """A request's name without its method in front: a locustfile that named a request
    "POST /items/" gets the endpoint "POST /items/", not "POST POST /items/"."""
    return name.removeprefix(f"{method} ") if method else name


def _metrics(
    method: str,
    name: str,
    entries: Sequence[Mapping[str, Any]],
    steady_rps: float | None,
    confidence: float = 0.95,
) -> EndpointMetrics:
    from tutormax_ops.collectors.sampling import quantile_interval, rate_interval

    requests = sum(int(entry["num_requests"]) for entry in entries)
    failures = sum(int(entry["num_failures"]) for entry in entries)
    # Requests without a response time (Locust's "none requests") count in totals, not in timings.
    timed = requests - sum(int(entry.get("num_none_requests", 0)) for entry in entries)
    histogram = merge_histograms(
        {int(bucket): int(count) for bucket, count in entry["response_times"].items()} for entry in entries
    )
    minimums = [entry["min_response_time"] for entry in entries if entry.get("min_response_time") is not None]
    p95 = quantile_interval(histogram, 0.95, confidence)
    errors = rate_interval(failures, requests, confidence)
    return EndpointMetrics(
        method=method,
        name=name,
        requests=requests,
        failures=failures,
        error_rate_percent=100.0 * failures / requests if requests else None,
        avg_ms=sum(float(entry["total_response_time"]) for entry in entries) / timed if timed else None,
        min_ms=float(min(minimums)) if minimums else None,
        p50_ms=percentile(histogram, 0.50),
        p90_ms=percentile(histogram, 0.90),
        p95_ms=percentile(histogram, 0.95),
        p99_ms=percentile(histogram, 0.99),
        max_ms=float(max(entry["max_response_time"] for entry in entries)) if timed else None,
        steady_rps=steady_rps,
        p95_low_ms=p95.low,
        p95_high_ms=p95.high,
        error_rate_low=errors.low,
        error_rate_high=errors.high,
    )


def _with_server(metrics: EndpointMetrics, histogram: Mapping[int, int]) -> EndpointMetrics:
    p95 = percentile(histogram, 0.95)
    return replace(
        metrics, server_p95_ms=None if p95 is None else float(p95), server_requests=sum(histogram.values())
    )


def _completed_per_second(
    entries: Sequence[Mapping[str, Any]], window: SteadyWindow | None
) -> tuple[tuple[int, int], ...]:
    """Completions per whole second inside the steady window (its edge seconds are partial)."""
    counts: Counter[int] = Counter()
    for entry in entries:
        counts.update(
            {int(second): int(count) for second, count in entry.get("num_reqs_per_sec", {}).items()}
        )
    if not counts:
        return ()
    first, last = (
        (int(window.start.timestamp()), int(window.end.timestamp())) if window else (min(counts), max(counts))
    )
    return tuple((second, counts.get(second, 0)) for second in range(first + 1, last))


_LOG_STAMP = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]", re.MULTILINE)
_TIMER_SET = re.compile(r"Run time limit set to|Shape test starting")
_TIMER_FIRED = re.compile(r"--run-time limit reached|Shape test stopping|Shape test completed")


def _log_span(log_text: str) -> tuple[float | None, str]:
    """Seconds from Locust's timer being set to it firing, by its own log stamps; a run stopped
    before it fired ends at its last log line."""
    start = end = last = None
    for line in log_text.splitlines():
        stamp = _LOG_STAMP.match(line)
        if stamp is None:
            continue
        at = datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S,%f")
        last = at
        if start is None and _TIMER_SET.search(line):
            start = at
        elif start is not None and end is None and _TIMER_FIRED.search(line):
            end = at
    if start is None:
        return None, "requests"
    return ((end or last) - start).total_seconds(), "locust log"


def _run_span(
    entries: Sequence[Mapping[str, Any]], history: Sequence[_HistoryRow]
) -> tuple[datetime | None, datetime | None]:
    """From the stats start to the last request, from the JSON (fractional seconds, nothing missed);
    the history's whole seconds only when no request was made."""
    starts = [float(entry["start_time"]) for entry in entries if entry.get("start_time")]
    lasts = [
        float(entry["last_request_timestamp"]) for entry in entries if entry.get("last_request_timestamp")
    ]
    if starts and lasts:
        return _utc(min(starts)), _utc(max(lasts))
    if history:
        return _utc(history[0].timestamp), _utc(history[-1].timestamp)
    return None, None


def _utc(epoch_seconds: float) -> datetime:
    return datetime.fromtimestamp(epoch_seconds, UTC)
