"""Order-statistic and binomial intervals, against known binomial values
(notes/regression-detection.md) and against their definition by simulation."""

from __future__ import annotations

import numpy as np
import pytest

from tutormax_ops.collectors.sampling import (
    min_requests,
    quantile_interval,
    quantile_ranks,
    rate_interval,
)


@pytest.mark.parametrize(
    ("n", "ranks"),
    [(100, (90, 100)), (200, (184, 197)), (1000, (936, 964)), (20, (17, None)), (50, (44, None))],
)
def test_p95_ranks_match_the_binomial_table(n: int, ranks: tuple[int, int | None]) -> None:
    assert quantile_ranks(n, 0.95, 0.95) == ranks


def test_the_requests_a_p95_needs_follow_from_the_confidence() -> None:
    # 0.95**n <= 0.025 from n = 72 on: the slowest request then bounds the p95 at 95 %.
    assert min_requests(0.95, 0.95) == 72
    assert quantile_ranks(71)[1] is None and quantile_ranks(72)[1] == 72
    assert min_requests(0.95, 0.99) == 104  # ln(0.005) / ln(0.95) = 103.3
    assert min_requests(0.95, 0.90) > min_requests(0.95, 0.80)


def test_the_interval_covers_the_true_p95_at_least_as_often_as_promised() -> None:
    rng = np.random.default_rng(7)
    true_p95 = float(np.exp(3 + 0.6 * 1.6449))  # lognormal(3, 0.6)
    covered = 0
    trials = 400
    for _ in range(trials):
        times = np.rint(rng.lognormal(3, 0.6, size=200)).astype(int)
        histogram = dict(zip(*np.unique(times, return_counts=True), strict=True))
        interval = quantile_interval({int(k): int(v) for k, v in histogram.items()})
        covered += interval.low <= true_p95 + 0.5 and true_p95 - 0.5 <= interval.high
    assert covered / trials >= 0.93  # 0.95 promised; 400 trials give a standard error of 1.1 %


def test_bounds_are_values_of_the_histogram_at_their_ranks() -> None:
    histogram = {value: 1 for value in range(1, 101)}  # 1..100 ms, one request each
    interval = quantile_interval(histogram)
    # The value by Locust's own rule (more than 95 of the 100 lie at or below it), the bounds at ranks 90, 100.
    assert (interval.value, interval.low, interval.high) == (96.0, 90.0, 100.0)
    assert quantile_interval({}).value is None


def test_error_rate_interval_is_clopper_pearson() -> None:
    none_failed = rate_interval(0, 100)
    assert none_failed.value == 0 and none_failed.low == 0
    assert none_failed.high == pytest.approx(100 * (1 - 0.025 ** (1 / 100)), rel=1e-6)  # 3.62 %
    some = rate_interval(5, 100)
    assert some.low < 5 < some.high and some.high == pytest.approx(11.28, abs=0.01)
