"""A run's requests per endpoint and per second (`include/locust/per_second.py`), and the figures of
any span of whole seconds: the steady state the verdicts judge, a stress step.

Each Locust process that ran users wrote `seconds-<pid>.json`: per epoch second and per
"METHOD name", its requests, failures, the sum, min and max of Locust's response times, their
histogram in Locust's buckets, and the histogram of the service's own `X-Response-Time`. Merged over
the processes, the seconds of a span give exactly the figures Locust's JSON gives for the whole run
(`collectors.locust`): counts, percentiles by Locust's rank rule, the p95's distribution-free
interval and the error rate's (`collectors.sampling`), and the server-side p95 beside them.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from tutormax_ops.collectors.locust import EndpointMetrics, merge_histograms, percentile

SECONDS_GLOB = "seconds-*.json"  # one per locust process, written when it quits


WHOLE_RUN = "whole run"
STEADY_STATE = "steady state"


@dataclass(frozen=True)
class Judged:
    """The figures the verdicts and the history use: the steady state's, from `start` (the first
    whole second after the ramp-up and the warm-up) to `end` (the run's last, partial second,
    excluded); the whole run's, with the reason, when the run has no per-second records or no
    steady state."""

    basis: Literal["steady state", "whole run"]
    endpoints: tuple[EndpointMetrics, ...]
    aggregate: EndpointMetrics
    start: datetime | None = None
    end: datetime | None = None
    excluded_s: float | None = None  # from the run's start (its first user) to `start`
    note: str = ""  # why the whole run is judged

    @property
    def seconds(self) -> float | None:
        return (self.end - self.start).total_seconds() if self.start and self.end else None


@dataclass
class Second:
    """One endpoint's requests in one second (or, merged, in a span of them)."""

    requests: int = 0
    failures: int = 0
    sum_ms: float = 0.0
    min_ms: float | None = None
    max_ms: float | None = None
    client: dict[int, int] = field(default_factory=dict)
    server: dict[int, int] = field(default_factory=dict)

    def add(self, other: Second) -> None:
        self.requests += other.requests
        self.failures += other.failures
        self.sum_ms += other.sum_ms
        self.min_ms = _extreme(min, self.min_ms, other.min_ms)
        self.max_ms = _extreme(max, self.max_ms, other.max_ms)
        # In place: a long run merges tens of thousands of seconds.
        for mine, theirs in ((self.client, other.client), (self.server, other.server)):
            for bucket, count in theirs.items():
                mine[bucket] = mine.get(bucket, 0) + count


@dataclass(frozen=True)
class PerSecond:
    seconds: dict[int, dict[str, Second]]  # epoch second -> "METHOD name" -> its requests
    shape_started_at: float | None = None  # a stress run: when its shape started, epoch seconds

    def span(self, start: int, end: int) -> dict[str, Second]:
        """Each endpoint's requests in the seconds start <= s < end."""
        merged: dict[str, Second] = {}
        for second in range(start, end):
            for name, stats in self.seconds.get(second, {}).items():
                merged.setdefault(name, Second()).add(stats)
        return merged

    def client_histograms(self) -> dict[int, dict[int, int]]:
        """Locust's response times per second, all endpoints merged (the stress steps)."""
        return {
            second: merge_histograms(stats.client for stats in endpoints.values())
            for second, endpoints in self.seconds.items()
        }

    def server_histograms(self) -> dict[str, dict[int, int]]:
        """The service's own times per endpoint over the whole run."""
        whole = self.span(min(self.seconds, default=0), max(self.seconds, default=-1) + 1)
        return {name: stats.server for name, stats in whole.items() if stats.server}


def read_seconds(folder: Path) -> PerSecond | None:
    """The records of every process in `folder`, merged; None when no process wrote one (a run from
    before they were kept)."""
    paths = sorted(folder.glob(SECONDS_GLOB))
    if not paths:
        return None
    seconds: dict[int, dict[str, Second]] = {}
    started: list[float] = []
    for path in paths:
        payload = json.loads(path.read_text())
        if payload.get("shape_started_at") is not None:
            started.append(float(payload["shape_started_at"]))
        for second, endpoints in payload.get("seconds", {}).items():
            into = seconds.setdefault(int(second), {})
            for name, values in endpoints.items():
                into.setdefault(name, Second()).add(_second(values))
    return PerSecond(seconds, min(started, default=None))


def span_metrics(
    per_second: PerSecond,
    start: int,
    end: int,
    *,
    order: Sequence[tuple[str, str]] = (),
    confidence: float = 0.95,
) -> tuple[tuple[EndpointMetrics, ...], EndpointMetrics]:
    """Per endpoint and for all of them, the figures of the seconds start <= s < end; throughput
    over those seconds. Endpoints come in `order` ((method, name) pairs, e.g. the whole run's, each
    kept even with no request in the span), then any others."""
    from tutormax_ops.collectors.locust import AGGREGATE_NAME

    spans = per_second.span(start, end)
    keys = list(dict.fromkeys([*(f"{method} {name}" for method, name in order), *sorted(spans)]))
    seconds = max(end - start, 0)
    endpoints = tuple(
        _figures(*key.split(" ", 1), spans.get(key, Second()), seconds, confidence) for key in keys
    )
    everything = Second()
    for stats in spans.values():
        everything.add(stats)
    return endpoints, _figures("", AGGREGATE_NAME, everything, seconds, confidence)


def judge_steady_state(
    per_second: PerSecond | None,
    steady_after_s: float | None,
    started: datetime | None,
    endpoints: tuple[EndpointMetrics, ...],
    aggregate: EndpointMetrics,
    *,
    confidence: float = 0.95,
) -> Judged:
    """The steady state's figures: the whole seconds from `steady_after_s` after `started` (the
    run's first request) up to the last second recorded, which is left out as partial (the run
    stopped inside it); the whole run's `endpoints` and `aggregate`, with the reason, otherwise."""
    whole = Judged(WHOLE_RUN, endpoints, aggregate)
    if per_second is None or not per_second.seconds or started is None:
        return replace(whole, note="the run kept no per-second records (it predates them)")
    if steady_after_s is None:
        return replace(whole, note="no steady state was asked for")
    start, end = math.ceil(started.timestamp() + steady_after_s), max(per_second.seconds)
    order = [(endpoint.method, endpoint.name) for endpoint in endpoints]
    judged, total = span_metrics(per_second, start, end, order=order, confidence=confidence)
    if total.requests == 0:
        return replace(
            whole, note=f"no request completed in a whole second after the first {steady_after_s:.0f} s"
        )
    return Judged(
        STEADY_STATE,
        judged,
        total,
        start=_utc(start),
        end=_utc(end),
        excluded_s=start - started.timestamp(),
    )


def _figures(method: str, name: str, stats: Second, seconds: int, confidence: float) -> EndpointMetrics:
    from tutormax_ops.collectors.sampling import quantile_interval, rate_interval

    timed = sum(stats.client.values())
    p95 = quantile_interval(stats.client, 0.95, confidence)
    errors = rate_interval(stats.failures, stats.requests, confidence)
    server_p95 = percentile(stats.server, 0.95)
    return EndpointMetrics(
        method=method,
        name=name,
        requests=stats.requests,
        failures=stats.failures,
        error_rate_percent=errors.value,
        avg_ms=stats.sum_ms / timed if timed else None,
        min_ms=stats.min_ms,
        p50_ms=percentile(stats.client, 0.50),
        p90_ms=percentile(stats.client, 0.90),
        p95_ms=percentile(stats.client, 0.95),
        p99_ms=percentile(stats.client, 0.99),
        max_ms=stats.max_ms,
        steady_rps=stats.requests / seconds if seconds else None,
        p95_low_ms=p95.low,
        p95_high_ms=p95.high,
        error_rate_low=errors.low,
        error_rate_high=errors.high,
        server_p95_ms=None if server_p95 is None else float(server_p95),
        server_requests=sum(stats.server.values()),
    )


# Written by include/locust/server_time.py until the per-second records replaced it: old runs only.
SERVER_TIMES_GLOB = "server_times-*.json"


def legacy_server_times(folder: Path) -> dict[str, dict[int, int]]:
    """An old run's service's own response times per "METHOD name", merged over its processes."""
    merged: dict[str, dict[int, int]] = {}
    for path in sorted(folder.glob(SERVER_TIMES_GLOB)):
        for name, histogram in json.loads(path.read_text()).items():
            merged[name] = merge_histograms(
                [merged.get(name, {}), {int(k): int(v) for k, v in histogram.items()}]
            )
    return merged


def _second(values: Mapping) -> Second:
    def histogram(counts: Mapping) -> dict[int, int]:
        return {int(bucket): int(count) for bucket, count in counts.items()}

    return Second(
        requests=int(values["requests"]),
        failures=int(values["failures"]),
        sum_ms=float(values["sum_ms"]),
        min_ms=values.get("min_ms"),
        max_ms=values.get("max_ms"),
        client=histogram(values.get("client", {})),
        server=histogram(values.get("server", {})),
    )


def _extreme(pick, *values: float | None) -> float | None:
    present: Iterable[float] = [value for value in values if value is not None]
    return pick(present, default=None)


def _utc(epoch_seconds: float) -> datetime:
    return datetime.fromtimestamp(epoch_seconds, UTC)


def grouped_by_route(folder: Path) -> dict[str, int]:
    """ "METHOD route" -> unnamed requests grouped into it (`per_second`), over every process."""
    grouped: Counter[str] = Counter()
    for path in sorted(folder.glob(SECONDS_GLOB)):
        grouped.update(json.loads(path.read_text()).get("grouped_by_route") or {})
    return dict(grouped)


def route_grouping_note(folder: Path) -> str | None:
    """The report's one note on requests the locustfile did not name, or None when it named them all."""
    grouped = grouped_by_route(folder)
    if not grouped:
        return None
    routes = ", ".join(f"{route} ({count:,} requests)" for route, count in sorted(grouped.items()))
    example = next(iter(sorted(grouped))).split(" ", 1)[1]
    return (
        "Requests your locustfile did not name were grouped by route: path segments that are integers, "
        f"UUIDs or long hex strings became {{id}} and query strings were dropped: {routes}. Name them "
        f'yourself to choose the endpoints: self.client.get(path, name="{example}").'
    )
