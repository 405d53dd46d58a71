"""How far one run's figures can be trusted, from its own sample size: distribution-free intervals.

- **A percentile.** The p95 of n requests is an order statistic. The number of requests at or
  below the true p95 is Binomial(n, 0.95), so the ranks `lo = F⁻¹(α/2)` and `hi = F⁻¹(1 − α/2) + 1`
  of the sorted response times bound the true p95 with confidence at least 1 − α, whatever the
  latency distribution (n = 100 gives ranks 90..100, n = 200 gives 184..197, n = 1000 gives 936..964).
- **The requests a percentile needs.** The upper rank exists (is at most n) once the slowest of n
  requests lies above the true p95 with probability 1 − α/2, that is once `q**n ≤ α/2`:
  `n ≥ ln(α/2) / ln(q)`, 72 requests for a p95 at 95% confidence. Fewer, and the run says nothing
  about how high its p95 really is, so the endpoint is not judged.
- **A rate.** Failures over requests: the exact (Clopper-Pearson) binomial interval.

Locust's JSON keeps each endpoint's histogram of response times in its reporting buckets (see
`collectors.locust.PERCENTILE_ROUNDING`), so the bounds are bucket values, as its percentiles are.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass

P95 = 0.95


@dataclass(frozen=True)
class Interval:
    """A figure with its confidence bounds; a None bound is one the sample cannot give."""

    value: float | None
    low: float | None
    high: float | None


@functools.cache  # a scipy quantile costs ~0.3 ms, and one n comes back run after run
def quantile_ranks(n: int, quantile: float = P95, confidence: float = 0.95) -> tuple[int | None, int | None]:
    """The 1-based ranks of the order statistics that bound the `quantile` of n values; None where
    the rank falls outside 1..n (the sample cannot bound that side)."""
    from scipy.stats import binom

    alpha = 1 - confidence
    low = int(binom.ppf(alpha / 2, n, quantile))
    high = int(binom.ppf(1 - alpha / 2, n, quantile)) + 1
    return (low if low >= 1 else None, high if high <= n else None)


def min_requests(quantile: float = P95, confidence: float = 0.95) -> int:
    """The fewest values whose `quantile` has a finite upper bound at `confidence` (see the module)."""
    return math.ceil(math.log((1 - confidence) / 2) / math.log(quantile) - 1e-9)


def quantile_interval(
    histogram: Mapping[int, int], quantile: float = P95, confidence: float = 0.95
) -> Interval:
    """The histogram's `quantile` (Locust's rank rule) and its order-statistic bounds, in its buckets."""
    from tutormax_ops.collectors.locust import percentile

    n = sum(histogram.values())
    if n == 0:
        return Interval(None, None, None)
    low_rank, high_rank = quantile_ranks(n, quantile, confidence)
    return Interval(
        value=_as_float(percentile(histogram, quantile)),
        low=_value_at_rank(histogram, low_rank),
        high=_value_at_rank(histogram, high_rank),
    )


def rate_interval(events: int, trials: int, confidence: float = 0.95) -> Interval:
    """A rate in percent (e.g. failures over requests) with its exact binomial bounds."""
    from scipy.stats import binomtest

    if trials == 0:
        return Interval(None, None, None)
    bounds = binomtest(events, trials).proportion_ci(confidence_level=confidence, method="exact")
    return Interval(100.0 * events / trials, 100.0 * bounds.low, 100.0 * bounds.high)


def _value_at_rank(histogram: Mapping[int, int], rank: int | None) -> float | None:
    if rank is None:
        return None
    seen = 0
    for value in sorted(histogram):
        seen += histogram[value]
        if seen >= rank:
            return float(value)
    return None


def _as_float(value: int | None) -> float | None:
    return None if value is None else float(value)
