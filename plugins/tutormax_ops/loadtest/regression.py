"""Verdict 2: is this load-test run worse than its profile's own history? Per metric, per endpoint.

Two rules, as Netflix pairs them (notes/regression-detection.md):

1. **Robust rule**, a fast alert on a single run: the run against the median of the last
   `robust_runs` valid runs, in units of their MAD (scaled by 1.4826 to estimate σ). It fires at
   `robust_z` robust standard deviations in the bad direction.
2. **E-divisive means** (Matteson & James 2014; MongoDB's and Apache Otava's change-point method):
   over the last `window_runs` runs, the split that maximises the energy statistic, kept when a
   permutation test finds it significant at `p_value`, then searched again to its right, so that
   the latest change point is found. It fires while that change point is at most `confirm_runs`
   runs old and the series moved the bad way.

Either fires only when the move is also at least `min_relative_change` of the baseline and at least
the metric's `min_abs_change`. For a p95 that is 5 ms: Locust reports 1 ms buckets, and an endpoint
answering in 3 ms sits in one bucket run after run, so its history's MAD is 0 and any move looks
infinitely far. A shared host moves such an endpoint by a few ms on its own: a fresh-clone test run
saw 3 → 6 ms on an unchanged endpoint after six runs at exactly 3 ms, which a 2 ms minimum flagged.

Scale: both rules judge a latency (p95, query p95, knee p95) on a log scale. Its run-to-run moves
are multiplicative and skewed upwards (a slow run doubles a p95 far more often than a fast one
halves it). The MAD of the raw values, symmetric by construction, puts the upper tail too close, and
the energy statistic of the raw values is led by the upper tail's long distances. On simulated
unchanged runs (bench/loadtest.py (b'), `bench/noise_wide.json`) the raw scale raised findings on
1–2 runs in 100 however long the history; the log scale, on 0.2–0.6. `min_relative_change` and
`min_abs_change` stay on the metric's own scale.

Sampling: where a point carries its run's own confidence interval (`collectors.sampling`), both
rules measure the move from the interval's bound nearest the baseline, so a finding clears this
run's sampling uncertainty and the history's run-to-run spread at once.

Baseline: a run flagged as a regression (`Point.baseline` False) stays in the series, and so in
the change-point search, but out of the robust rule's reference, until a person accepts it or a
change point more than `confirm_runs` runs old confirms its level as the new normal.

Provisional: findings on a reference of fewer than `alarm_history` runs are marked provisional.

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

AGGREGATE = "all endpoints"
MAD_TO_SIGMA = 1.4826  # MAD × this estimates σ for normally distributed values
_PERMUTATION_BATCH = 50


@dataclass(frozen=True)
class MetricSpec:
    label: str
    unit: str
    higher_is_worse: bool
    min_abs_change: float  # smaller moves are noise at the metric's resolution
    # A latency is judged on a log scale (see the module), its values clamped up to this floor (its
    # resolution) so that a 0 ms bucket has a logarithm; None: judged on its own scale.
    log_floor: float | None = None


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
class Point:
    """One run's value of one metric; the last point of a series is the run being judged."""

    run_id: str
    started_at: datetime
    value: float | None
    low: float | None = None  # the run's own confidence interval, where its sample gives one
    high: float | None = None
    baseline: bool = True  # False: flagged as a regression, and neither accepted nor confirmed


@dataclass(frozen=True)
class ChangePoint:
    index: int  # first index of the new segment
    statistic: float
    p_value: float


@dataclass(frozen=True)
class Finding:
    """A regression: which metric of which endpoint moved, how much, and since which run."""

    scope: str  # an endpoint ("GET /api/tutors"), or AGGREGATE
    metric: str
    rule: Literal["robust", "change point"]
    baseline: float  # median of the reference runs
    current: float  # this run's value (robust) or the median since the change (change point)
    relative_change: float | None  # None when the baseline is 0
    since_run_id: str
    since_started_at: datetime
    runs_since: int
    z: float | None = None
    p_value: float | None = None
    provisional: bool = False  # the reference is shorter than `alarm_history`

    @property
    def change(self) -> float:
        return self.current - self.baseline

    def describe(self) -> str:
        spec = METRICS[self.metric]
        moved = f"{self.change:+.1f} {spec.unit}"
        if self.relative_change is not None:
            moved += f" ({self.relative_change:+.0%})"
        return (
            f"{'provisional: ' if self.provisional else ''}{self.scope}: {spec.label} {self.baseline:.1f} → "
            f"{self.current:.1f} {spec.unit}, {moved}, since run {self.since_run_id}"
        )


@dataclass(frozen=True)
class SeriesVerdict:
    scope: str
    metric: str
    status: Literal["regression", "ok", "insufficient history", "no data"]
    baseline: float | None  # median of the last `robust_runs` valid values before this run
    current: float | None
    history_runs: int
    findings: tuple[Finding, ...] = ()
    # The smallest relative step of this run over the baseline that the rules would flag: the
    # history's spread (robust_z × σ), the minimum change, and this run's own sampling margin.
    min_step: float | None = None


def energy_statistics(values: np.ndarray, *, min_size: int = 2) -> np.ndarray:
    """Q(τ) of e-divisive means (α = 1) for every split τ of each row of `values` (shape (k, n)).

    Q(τ) = τ(n−τ)/n · [2/(τ(n−τ)) Σ|xᵢ−yⱼ| − Σ_{i<k}|xᵢ−xₖ|/C(τ,2) − Σ_{j<k}|yⱼ−yₖ|/C(n−τ,2)],
    all splits at once from prefix sums of the distance matrix's upper triangle (O(n²) per row).
    Splits leaving fewer than `min_size` points on a side are −inf.
    """
    n = values.shape[1]
    distances = np.triu(np.abs(values[:, :, None] - values[:, None, :]), 1)
    column_sums = distances.sum(axis=1)  # Σ_{i<τ} d(i, τ)
    row_sums = distances.sum(axis=2)  # Σ_{k>j} d(j, k)
    total = row_sums.sum(axis=1, keepdims=True)
    taus = np.arange(n)
    within_left = np.cumsum(column_sums, axis=1) - column_sums  # pairs inside [0, τ)
    within_right = np.cumsum(row_sums[:, ::-1], axis=1)[:, ::-1]  # pairs inside [τ, n)
    between = total - within_left - within_right
    left, right = taus, n - taus
    with np.errstate(divide="ignore", invalid="ignore"):
        pairs_left = np.where(left > 1, left * (left - 1) / 2, np.inf)
        pairs_right = np.where(right > 1, right * (right - 1) / 2, np.inf)
        energy = 2 * between / (left * right) - within_left / pairs_left - within_right / pairs_right
        statistics = left * right / n * energy
    valid = (taus >= min_size) & (right >= min_size)
    return np.where(valid, statistics, -np.inf)


def best_split(
    values: np.ndarray,
    *,
    permutations: int,
    rng: np.random.Generator,
    min_size: int = 2,
    p_value_limit: float = 1.0,
) -> ChangePoint | None:
    """The split maximising Q, with the permutation test's p-value; None if the series is too short.

    Permutations run in batches and stop once the p-value can no longer reach `p_value_limit`: most
    series have no change, and for them a quarter of the permutations settles it. The p-value of a
    test stopped early is estimated from the permutations it ran (and lies above the limit).
    """
    if values.size < 2 * min_size:
        return None
    observed = energy_statistics(values[None, :], min_size=min_size)[0]
    index = int(np.argmax(observed))
    exceeding = done = 0
    while done < permutations:
        batch = min(_PERMUTATION_BATCH, permutations - done)
        shuffled = rng.permuted(np.broadcast_to(values, (batch, values.size)), axis=1)
        exceeding += int(
            np.count_nonzero(energy_statistics(shuffled, min_size=min_size).max(axis=1) >= observed[index])
        )
        done += batch
        if (1 + exceeding) / (permutations + 1) > p_value_limit:
            break
    return ChangePoint(index=index, statistic=float(observed[index]), p_value=(1 + exceeding) / (done + 1))


def latest_change_points(
    values: np.ndarray, *, p_value: float, permutations: int, seed: int = 0, min_size: int = 2
) -> list[ChangePoint]:
    """Significant change points, oldest first, found by splitting again right of each one: what
    the verdict needs is the latest change, and the segment just before it."""
    rng = np.random.default_rng(seed)
    found: list[ChangePoint] = []
    start = 0
    while (
        split := best_split(
            values[start:], permutations=permutations, rng=rng, min_size=min_size, p_value_limit=p_value
        )
    ) and split.p_value <= p_value:
        found.append(ChangePoint(start + split.index, split.statistic, split.p_value))
        start += split.index
    return found


def analyze_series(scope: str, metric: str, points: Sequence[Point], params: Regression) -> SeriesVerdict:
    """Judge the last point of `points` (oldest first) against the points before it."""
    spec = METRICS[metric]
    known = [point for point in points[-(params.window_runs + 1) :] if point.value is not None]
    current = points[-1] if points and points[-1].value is not None else None
    history = known[:-1] if current is not None else known
    changes = _change_points(scope, metric, known, params)
    usable = _baseline_points(history, changes, len(known), params)
    reference = np.array([point.value for point in usable[-params.robust_runs :]], dtype=float)
    baseline = float(np.median(reference)) if reference.size else None
    if current is None:
        return SeriesVerdict(scope, metric, "no data", baseline, None, len(history))
    if reference.size < params.min_history:
        return SeriesVerdict(scope, metric, "insufficient history", baseline, current.value, reference.size)
    provisional = reference.size < params.alarm_history
    robust = _RobustReference.of(spec, reference)
    findings = [
        replace(finding, provisional=provisional)
        for finding in (
            _robust_finding(scope, metric, spec, robust, current, params),
            _change_point_finding(scope, metric, known, changes, current, params),
        )
        if finding is not None
    ]
    status: Literal["regression", "ok"] = "regression" if findings else "ok"
    return SeriesVerdict(
        scope,
        metric,
        status,
        baseline,
        current.value,
        reference.size,
        tuple(findings),
        min_step=_min_step(spec, robust, current, params),
    )


def analyze_history(
    series: Mapping[tuple[str, str], Sequence[Point]], params: Regression
) -> list[SeriesVerdict]:
    """Every (scope, metric) series, judged on its last point."""
    return [analyze_series(scope, metric, points, params) for (scope, metric), points in series.items()]


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


def _judged(spec: MetricSpec, values: np.ndarray) -> np.ndarray:
    """The values on the scale the rules measure them: the logarithm for a latency."""
    return values if spec.log_floor is None else np.log(np.maximum(values, spec.log_floor))


@dataclass(frozen=True)
class _RobustReference:
    """The robust rule's reference runs: their median, and their centre and σ (MAD × 1.4826) on the
    judged scale."""

    median: float
    centre: float
    scale: float

    @classmethod
    def of(cls, spec: MetricSpec, reference: np.ndarray) -> _RobustReference:
        judged = _judged(spec, reference)
        centre = float(np.median(judged))
        scale = MAD_TO_SIGMA * float(np.median(np.abs(judged - centre)))
        return cls(float(np.median(reference)), centre, scale)


def _min_step(spec: MetricSpec, robust: _RobustReference, current: Point, params: Regression) -> float | None:
    """The smallest relative move the robust rule can flag for this history and this run's sample."""
    median = robust.median
    if not median:
        return None
    spread = params.robust_z * robust.scale * (1 if spec.higher_is_worse else -1)
    flagged_from = robust.centre + spread
    needed = max(
        abs((flagged_from if spec.log_floor is None else math.exp(flagged_from)) - median),
        params.min_relative_change * abs(median),
        spec.min_abs_change,
    )
    assert current.value is not None
    margin = abs(current.value - _nearest_bound(spec, current))
    return (needed + margin) / abs(median)


def _robust_finding(
    scope: str, metric: str, spec: MetricSpec, robust: _RobustReference, current: Point, params: Regression
) -> Finding | None:
    assert current.value is not None
    median, scale = robust.median, robust.scale
    bound = _nearest_bound(spec, current)
    moved = float(_judged(spec, np.asarray(bound))) - robust.centre
    deviation = moved if spec.higher_is_worse else -moved
    # Identical history (MAD 0, e.g. an error rate of 0 every night): any move is infinitely far,
    # and only the minimum-change rule decides.
    z = deviation / scale if scale > 0 else math.copysign(math.inf, deviation) if deviation else 0.0
    if z < params.robust_z or not _worse_by(spec, median, bound, params):
        return None
    return Finding(
        scope=scope,
        metric=metric,
        rule="robust",
        baseline=median,
        current=current.value,
        relative_change=_relative(median, current.value),
        since_run_id=current.run_id,
        since_started_at=current.started_at,
        runs_since=1,
        z=z,
    )


def _change_points(scope: str, metric: str, known: Sequence[Point], params: Regression) -> list[ChangePoint]:
    values = _judged(METRICS[metric], np.array([point.value for point in known], dtype=float))
    # A fixed seed per series keeps a rerun's verdict identical.
    seed = sum(map(ord, f"{scope}|{metric}"))
    return latest_change_points(values, p_value=params.p_value, permutations=params.permutations, seed=seed)


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
