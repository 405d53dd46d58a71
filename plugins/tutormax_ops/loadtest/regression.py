"""Verdict 2: is this load-test run worse than its profile's own history? Per metric, per endpoint.

Two rules:

1. **Prediction limit**, an alert on a single run: the run against the last `reference_runs`
   baseline runs. For one new value of a normal series whose mean and spread are estimated from n
   runs, the one-sided limit is mean + t(n−1) · s · √(1 + 1/n): Student's t with the history's own
   degrees of freedom, so a short history, whose spread is itself uncertain, gets a wider limit
   (at a per-series level of 0.05%: 8.6 s at 5 runs, 4.8 at 10, 3.9 at 20; a fixed z of 3.3 would
   alarm far too often on 3–10 runs). The level is set for the whole run, not per series: over
   the k series a run judges, each of the 2k tests (both rules) at 1 − (1 − `false_alarm_rate`)^(1/2k)
   (Šidák), so a run with 19 series raises a false finding on at most `false_alarm_rate` of
   unchanged runs, however many endpoints it has.
   Pooled spread: a run's p95 series share its noise (the machine, the database's state), so each
   p95 series' variance is moderated toward the variance pooled over the run's other p95 series,
   worth `pooled_runs` runs of prior (never more than those series hold), as an empirical-Bayes
   (moderated t, Smyth 2004) prior: the degrees of freedom grow by as much.
2. **E-divisive means** (Matteson & James 2014; MongoDB's and Apache Otava's change-point method):
   over the last `window_runs` runs, the split that maximises the energy statistic, kept when a
   permutation test finds it significant at the same per-test level, then searched again to its right, so that
   the latest change point is found. It fires while that change point is at most `confirm_runs`
   runs old and the series moved the bad way.

Either fires only when the move is also at least `min_relative_change` of the baseline and at least
the metric's `min_abs_change`: Locust reports 1 ms buckets, and an endpoint answering in 3 ms
sits in one bucket run after run, so its history's spread is 0 and any move looks infinitely far.

Scale: latencies (p95, query p95, knee p95) are judged on a log scale: their run-to-run moves are
multiplicative and skewed upwards (a slow run doubles a p95 far more often than a fast one halves
it). `min_relative_change` and `min_abs_change` stay on the metric's own scale.

Sampling: where a point carries its run's own confidence interval (`collectors.sampling`), the
prediction limit's spread is at least the run's own sampling σ (from the interval's width; a p95
its sample cannot bound above is never flagged), and the change point's move is measured from the
interval's bound nearest the baseline.

Baseline: a run with a finding (`Point.baseline` False) stays in the series, and so in the
change-point search, but out of the prediction limit's reference, until a person accepts it or a
change point more than `confirm_runs` runs old confirms its level as the new normal. Until then a
later run is judged against the level before it, and its finding is "since" the first run of the
unbroken stretch of flagged runs it continues.

Why not a library: PyPI `signal-processing-algorithms` requires numpy<2, which conflicts with pandas 3
in our lock; `apache-otava` 0.8.0 pins numpy 2.2.* and scipy 1.16.* (our lock has numpy 2.4) and
pulls in BigQuery, Slack and pg8000 clients. The method itself is a few lines of numpy, below.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

import numpy as np

from tutormax_ops.core.loadtest_settings import Regression
from tutormax_ops.loadtest.change_points import ChangePoint, latest_change_points
from tutormax_ops.loadtest.prediction import (
    POOLED_METRIC,
    MetricSpec,
    Point,
    Pooled,
    PredictionLimit,
    on_judged_scale,
    smallest_step,
)

AGGREGATE = "all endpoints"
MAD_TO_SIGMA = 1.4826  # MAD × this estimates σ for normally distributed values


METRICS: dict[str, MetricSpec] = {
    "p95_ms": MetricSpec("p95", "ms", higher_is_worse=True, min_abs_change=5.0, log_floor=1.0),
    "error_rate": MetricSpec("error rate", "%", higher_is_worse=True, min_abs_change=0.5),
    "rps": MetricSpec("throughput", "req/s", higher_is_worse=False, min_abs_change=2.0),
    "cache_hit_rate": MetricSpec("cache hit rate", "%", higher_is_worse=False, min_abs_change=2.0),
    "query_p95_ms": MetricSpec("query p95", "ms", higher_is_worse=True, min_abs_change=1.0, log_floor=0.01),
    "knee_rps": MetricSpec("knee throughput", "req/s", higher_is_worse=False, min_abs_change=5.0),
    "knee_p95_ms": MetricSpec("knee p95", "ms", higher_is_worse=True, min_abs_change=2.0, log_floor=1.0),
}
AGGREGATE_METRICS = (
    "p95_ms",
    "error_rate",
    "rps",
    "cache_hit_rate",
    "query_p95_ms",
    "knee_rps",
    "knee_p95_ms",
)
ENDPOINT_METRICS = ("p95_ms", "error_rate")


@dataclass(frozen=True)
class Finding:
    """A regression: which metric of which endpoint moved, how much, and since which run."""

    scope: str  # an endpoint ("GET /api/tutors"), or AGGREGATE
    metric: str
    rule: Literal["prediction limit", "change point"]
    baseline: float  # median of the reference runs
    current: float  # this run's value (prediction limit) or the median since the change (change point)
    relative_change: float | None  # None when the baseline is 0
    since_run_id: str
    since_started_at: datetime
    runs_since: int
    z: float | None = None  # the move over the reference's spread (prediction limit)
    p_value: float | None = None
    # The smallest relative step over the baseline this history could have caught in this run.
    min_step: float | None = None

    @property
    def change(self) -> float:
        return self.current - self.baseline

    def describe(self) -> str:
        spec = METRICS[self.metric]
        moved = f"{self.change:+.1f} {spec.unit}"
        if self.relative_change is not None:
            moved += f" ({self.relative_change:+.0%})"
        caught = (
            f" (this history catches steps from {self.min_step:+.0%})" if self.min_step is not None else ""
        )
        return (
            f"{self.scope}: {spec.label} {self.baseline:.1f} → {self.current:.1f} {spec.unit}, {moved}, "
            f"since run {self.since_run_id}{caught}"
        )


@dataclass(frozen=True)
class SeriesVerdict:
    scope: str
    metric: str
    status: Literal["regression", "ok", "insufficient history", "no data"]
    baseline: float | None  # median of the last `reference_runs` baseline values before this run
    current: float | None
    history_runs: int
    findings: tuple[Finding, ...] = ()
    # The smallest relative step of this run over the baseline that the rules would flag: the
    # prediction limit, the minimum change, and this run's own sampling margin.
    min_step: float | None = None


@dataclass(frozen=True)
class _Prepared:
    """One series, ready to judge: its points, change points and prediction-limit reference."""

    scope: str
    metric: str
    known: list[Point]
    current: Point | None
    changes: list[ChangePoint]
    reference: np.ndarray  # the baseline runs the prediction limit compares with, oldest first

    @property
    def judged(self) -> bool:
        return self.current is not None and self.reference.size > 0

    @property
    def baseline(self) -> float | None:
        return float(np.median(self.reference)) if self.reference.size else None


def _prepare(
    scope: str, metric: str, points: Sequence[Point], params: Regression, levels: Levels
) -> _Prepared:
    known = [point for point in points[-(params.window_runs + 1) :] if point.value is not None]
    current = points[-1] if points and points[-1].value is not None else None
    history = known[:-1] if current is not None else known
    changes = _change_points(scope, metric, known, params, levels.change_point)
    usable = _baseline_points(history, changes, len(known), params)
    reference = np.array([point.value for point in usable[-params.reference_runs :]], dtype=float)
    return _Prepared(scope, metric, known, current, changes, reference)


@dataclass(frozen=True)
class Levels:
    """Each test's false-alarm level on one series, per rule."""

    prediction: float
    change_point: float

    @classmethod
    def for_run(cls, params: Regression, series_count: int) -> Levels:
        """The levels that keep the chance of any false finding in a run of `series_count` series at
        `false_alarm_rate`: the change points get `change_point_share` of it, the prediction limit
        the rest, each shared over the series (Šidák over independent tests; Bonferroni's share / k
        is within 0.5% of it). The change point cannot fire on a step's first run (it needs two
        runs on each side), so the single-run rule keeps most of the budget."""
        count = max(series_count, 1)
        share = params.change_point_share

        def per_series(rate: float) -> float:
            return 1 - (1 - rate) ** (1 / count)

        return cls(
            per_series(params.false_alarm_rate * (1 - share)), per_series(params.false_alarm_rate * share)
        )


def _judged_count(series: Mapping[tuple[str, str], Sequence[Point]], params: Regression) -> int:
    """The series this run can judge: a value now, and `min_history` earlier ones (flagged runs
    included, so the count errs towards a stricter level)."""
    return sum(
        bool(points)
        and points[-1].value is not None
        and sum(point.value is not None for point in points[-(params.window_runs + 1) : -1])
        >= params.min_history
        for points in series.values()
    )


def analyze_series(
    scope: str,
    metric: str,
    points: Sequence[Point],
    params: Regression,
    *,
    levels: Levels | None = None,
    pooled: Pooled | None = None,
) -> SeriesVerdict:
    """Judge the last point of `points` (oldest first) against the points before it, each rule at
    its `levels` (alone: the series holds the whole run's `false_alarm_rate`)."""
    levels = Levels.for_run(params, 1) if levels is None else levels
    return _judge(_prepare(scope, metric, points, params, levels), params, levels, pooled)


def _judge(prepared: _Prepared, params: Regression, levels: Levels, pooled: Pooled | None) -> SeriesVerdict:
    scope, metric, current = prepared.scope, prepared.metric, prepared.current
    spec = METRICS[metric]
    baseline, size = prepared.baseline, int(prepared.reference.size)
    if current is None:
        return SeriesVerdict(scope, metric, "no data", baseline, None, size)
    if size < params.min_history:
        return SeriesVerdict(scope, metric, "insufficient history", baseline, current.value, size)
    limit = PredictionLimit.of(
        spec, prepared.reference, levels.prediction, pooled, current, params.confidence
    )
    min_step = smallest_step(spec, limit, params)
    findings = [
        replace(finding, min_step=min_step)
        for finding in (
            _limit_finding(scope, metric, spec, limit, prepared.known, current, params),
            _change_point_finding(scope, metric, prepared.known, prepared.changes, current, params),
        )
        if finding is not None
    ]
    status: Literal["regression", "ok"] = "regression" if findings else "ok"
    return SeriesVerdict(
        scope, metric, status, baseline, current.value, size, tuple(findings), min_step=min_step
    )


def analyze_history(
    series: Mapping[tuple[str, str], Sequence[Point]], params: Regression
) -> list[SeriesVerdict]:
    """Every (scope, metric) series, judged on its last point, with the false-alarm level shared
    over the series this run judges and the p95 series' spreads pooled."""
    levels = Levels.for_run(params, _judged_count(series, params))
    prepared = [_prepare(scope, metric, points, params, levels) for (scope, metric), points in series.items()]
    counted = [item for item in prepared if item.judged and item.reference.size >= params.min_history]
    pooled = Pooled.over(
        [item.reference for item in counted if item.metric == POOLED_METRIC],
        METRICS[POOLED_METRIC],
        params.pooled_runs,
    )
    return [
        _judge(item, params, levels, pooled if item.metric == POOLED_METRIC else None) for item in prepared
    ]


def _worse_by(spec: MetricSpec, baseline: float, value: float, params: Regression) -> bool:
    """Moved in the bad direction by at least both the relative and the absolute minimum."""
    change = (value - baseline) if spec.higher_is_worse else (baseline - value)
    return change > 0 and change >= max(params.min_relative_change * abs(baseline), spec.min_abs_change)


def _relative(baseline: float, value: float) -> float | None:
    return (value - baseline) / abs(baseline) if baseline else None


def _baseline_points(
    history: Sequence[Point], changes: Sequence[ChangePoint], length: int, params: Regression
) -> list[Point]:
    """The runs the robust rule may compare with: all but flagged ones, except that the runs flagged
    at the start of a level that a change point more than `confirm_runs` runs old confirmed are the
    norm, and then the level before it is not. Runs flagged after that stay out."""
    established = [change.index for change in changes if length - change.index > params.confirm_runs]
    start = established[-1] if established else None
    end = next((change.index for change in changes if start is not None and change.index > start), length)

    def in_level(index: int) -> bool:
        # The level's first runs, flagged before it was confirmed; a run flagged later was judged
        # against the level itself, and stays out.
        return start is not None and start <= index < min(end, start + params.confirm_runs + 1)

    admitted = [(index, point) for index, point in enumerate(history) if point.baseline or in_level(index)]
    if any(not point.baseline and in_level(index) for index, point in enumerate(history)):
        return [point for index, point in admitted if start is not None and index >= start]
    return [point for _, point in admitted]


def _nearest_bound(spec: MetricSpec, point: Point) -> float:
    """The end of the point's own interval nearest to "no worse": the value when it has none."""
    assert point.value is not None
    bound = point.low if spec.higher_is_worse else point.high
    return point.value if bound is None else bound


def _step_start(known: Sequence[Point]) -> int:
    """Where the step the current run (last of `known`) belongs to began: the first of the flagged
    runs right before it, none of them accepted or confirmed; the current run itself if none."""
    start = len(known) - 1
    while start > 0 and not known[start - 1].baseline:
        start -= 1
    return start


def _limit_finding(
    scope: str,
    metric: str,
    spec: MetricSpec,
    limit: PredictionLimit,
    known: Sequence[Point],
    current: Point,
    params: Regression,
) -> Finding | None:
    assert current.value is not None
    moved = float(on_judged_scale(spec, np.asarray(current.value))) - limit.centre
    deviation = moved if spec.higher_is_worse else -moved
    # Identical history (spread 0, e.g. an error rate of 0 every night): any move is infinitely
    # far, and only the minimum-change rule decides.
    z = (
        deviation / limit.spread
        if limit.spread > 0
        else math.copysign(math.inf, deviation)
        if deviation
        else 0.0
    )
    if not z > limit.multiplier or not _worse_by(spec, limit.median, current.value, params):
        return None
    start = _step_start(known)
    first = known[start]
    return Finding(
        scope=scope,
        metric=metric,
        rule="prediction limit",
        baseline=limit.median,
        current=current.value,
        relative_change=_relative(limit.median, current.value),
        since_run_id=first.run_id,
        since_started_at=first.started_at,
        runs_since=len(known) - start,
        z=z,
    )


def _change_points(
    scope: str, metric: str, known: Sequence[Point], params: Regression, level: float
) -> list[ChangePoint]:
    values = on_judged_scale(METRICS[metric], np.array([point.value for point in known], dtype=float))
    # A fixed seed per series keeps a rerun's verdict identical.
    seed = sum(map(ord, f"{scope}|{metric}"))
    # Enough permutations that a p-value can fall below `level` (a series with no change stops at
    # its first exceeding permutation).
    permutations = max(params.permutations, math.ceil(3 / level))
    return latest_change_points(values, p_value=level, permutations=permutations, seed=seed)


def _change_point_finding(
    scope: str,
    metric: str,
    known: Sequence[Point],
    changes: Sequence[ChangePoint],
    current: Point,
    params: Regression,
) -> Finding | None:
    spec = METRICS[metric]
    if not changes:
        return None
    values = np.array([point.value for point in known], dtype=float)
    latest = changes[-1]
    runs_since = values.size - latest.index
    if runs_since > params.confirm_runs:
        return None
    before_start = changes[-2].index if len(changes) > 1 else 0
    baseline = float(np.median(values[before_start : latest.index]))
    now = float(np.median(values[latest.index :]))
    # The level moved, and this run itself lies beyond the old level by more than its sampling margin.
    if not _worse_by(spec, baseline, now, params) or not _worse_by(
        spec, baseline, _nearest_bound(spec, current), params
    ):
        return None
    first = known[latest.index]
    return Finding(
        scope=scope,
        metric=metric,
        rule="change point",
        baseline=baseline,
        current=now,
        relative_change=_relative(baseline, now),
        since_run_id=first.run_id,
        since_started_at=first.started_at,
        runs_since=runs_since,
        p_value=latest.p_value,
    )
