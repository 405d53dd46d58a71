"""The prediction limit the regression rule judges a run against (see `regression`): the metrics'
scales, a run's point with its own sampling interval, the spread pooled over a run's p95 series,
and the limit mean + t(n-1)·s·sqrt(1+1/n) with the smallest step it can catch."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Sequence

    from tutormax_ops.core.loadtest_settings import Regression


@dataclass(frozen=True)
class MetricSpec:
    label: str
    unit: str
    higher_is_worse: bool
    min_abs_change: float  # smaller moves are noise at the metric's resolution
    # A latency is judged on a log scale (see the module), its values clamped up to this floor (its
    # resolution) so that a 0 ms bucket has a logarithm; None: judged on its own scale.
    log_floor: float | None = None


@dataclass(frozen=True)
class Point:
    """One run's value of one metric; the last point of a series is the run being judged."""

    run_id: str
    started_at: datetime
    value: float | None
    low: float | None = None  # the run's own confidence interval, where its sample gives one
    high: float | None = None
    baseline: bool = True  # False: flagged as a regression, and neither accepted nor confirmed


def on_judged_scale(spec: MetricSpec, values: np.ndarray) -> np.ndarray:
    """The values on the scale the rules measure them: the logarithm for a latency."""
    return values if spec.log_floor is None else np.log(np.maximum(values, spec.log_floor))


POOLED_METRIC = "p95_ms"  # the run's endpoints share its noise: their spreads are pooled


@dataclass(frozen=True)
class Pooled:
    """The run's p95 series: their variances on the judged scale, each with its degrees of freedom."""

    variances: tuple[float, ...]
    dfs: tuple[int, ...]
    pooled_runs: int  # the most runs' worth of prior a series' own spread is moderated with

    @classmethod
    def over(cls, references: Sequence[np.ndarray], spec: MetricSpec, pooled_runs: int) -> Pooled:
        judged = [on_judged_scale(spec, reference) for reference in references if reference.size > 1]
        return cls(
            tuple(float(np.var(values, ddof=1)) for values in judged),
            tuple(values.size - 1 for values in judged),
            pooled_runs,
        )

    def prior(self, own_variance: float, own_df: int) -> tuple[float, int]:
        """The other series' pooled variance and degrees of freedom (one series' own leaves it out
        once: its variance and df are matched, not its identity, so equal series share one slot)."""
        total_df = sum(self.dfs) - own_df
        if total_df <= 0:
            return 0.0, 0
        total = sum(v * df for v, df in zip(self.variances, self.dfs, strict=True)) - own_variance * own_df
        return max(total, 0.0) / total_df, total_df


@dataclass(frozen=True)
class PredictionLimit:
    """The prediction limit of the reference runs: their median, and on the judged scale their
    mean, spread, the t multiplier for the level and the limit itself (in the bad direction)."""

    median: float
    centre: float
    spread: float
    multiplier: float
    bound: float  # on the judged scale

    @classmethod
    def of(
        cls,
        spec: MetricSpec,
        reference: np.ndarray,
        level: float,
        pooled: Pooled | None,
        current: Point,
        confidence: float,
    ) -> PredictionLimit:
        from scipy.stats import t as student_t

        judged = on_judged_scale(spec, reference)
        n = judged.size
        variance, df = (float(np.var(judged, ddof=1)), n - 1) if n > 1 else (0.0, 0)
        if pooled is not None and pooled.pooled_runs > 0:
            prior_variance, prior_df = pooled.prior(variance, df)
            prior_df = min(prior_df, pooled.pooled_runs)
            if prior_df:
                variance = (prior_variance * prior_df + variance * df) / (prior_df + df)
                df += prior_df
        # Floor: this run's own sampling spread, from its interval (a history that happened to
        # agree closely says nothing of a run with fewer requests).
        spread = max(math.sqrt(variance), sampling_spread(spec, current, confidence))
        multiplier = float(student_t.ppf(1 - level, max(df, 1))) * math.sqrt(1 + 1 / n)
        centre = float(np.mean(judged))
        direction = 1 if spec.higher_is_worse else -1
        return cls(
            float(np.median(reference)), centre, spread, multiplier, centre + direction * multiplier * spread
        )

    def on_scale(self, spec: MetricSpec) -> float:
        """The limit on the metric's own scale."""
        return self.bound if spec.log_floor is None else math.exp(self.bound)


def sampling_spread(spec: MetricSpec, point: Point, confidence: float) -> float:
    """The σ of the point's own sampling on the judged scale, from its interval at `confidence`:
    0 for a figure without one (throughput), infinite where the sample cannot bound it above (a
    p95 of too few requests says nothing of how high it really is)."""
    from scipy.stats import norm

    if point.low is None and point.high is None:
        return 0.0
    if point.low is None or point.high is None:
        return math.inf
    low, high = on_judged_scale(spec, np.array([point.low, point.high], dtype=float))
    return float(high - low) / (2 * float(norm.ppf(0.5 + confidence / 2)))


def smallest_step(spec: MetricSpec, limit: PredictionLimit, params: Regression) -> float | None:
    """The smallest relative move this history and this run's sample can flag: beyond the
    prediction limit (None where this run's sample bounds nothing), and by the minimum change."""
    median = limit.median
    if not median or not math.isfinite(limit.bound):
        return None
    minimum = max(params.min_relative_change * abs(median), spec.min_abs_change)
    return max(abs(limit.on_scale(spec) - median), minimum) / abs(median)
