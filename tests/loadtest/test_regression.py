"""The history verdict on synthetic series with known answers: steps, single jumps, noise, direction."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from tutormax_ops.core.loadtest_settings import Regression
from tutormax_ops.loadtest.change_points import best_split, energy_statistics, latest_change_points
from tutormax_ops.loadtest.regression import AGGREGATE, Levels, Point, analyze_history, analyze_series

PARAMS = Regression()
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def points(values) -> list[Point]:
    return [
        Point(f"run-{index}", T0 + timedelta(days=index), float(value)) for index, value in enumerate(values)
    ]


def energy_by_definition(values: np.ndarray, min_size: int = 2) -> np.ndarray:
    """Matteson & James's Q(τ) written out term by term, to check the prefix-sum version against."""
    n = values.size
    result = np.full(n, -np.inf)
    for tau in range(min_size, n - min_size + 1):
        left, right = values[:tau], values[tau:]
        between = 2 * np.abs(left[:, None] - right[None, :]).mean()
        within_left = np.mean([abs(a - b) for a, b in itertools.combinations(left, 2)])
        within_right = np.mean([abs(a - b) for a, b in itertools.combinations(right, 2)])
        result[tau] = tau * (n - tau) / n * (between - within_left - within_right)
    return result


def test_energy_statistic_matches_its_definition() -> None:
    values = np.random.default_rng(5).normal(size=23)
    fast = energy_statistics(values[None, :])[0]
    slow = energy_by_definition(values)
    assert np.array_equal(np.isfinite(fast), np.isfinite(slow))
    finite = np.isfinite(slow)
    assert np.allclose(fast[finite], slow[finite])


def test_a_clear_step_is_found_where_it_is_and_is_significant() -> None:
    rng = np.random.default_rng(1)
    values = np.concatenate([rng.normal(100, 5, 30), rng.normal(130, 5, 10)])
    split = best_split(values, permutations=199, rng=np.random.default_rng(0))
    assert split is not None and split.index == 30 and split.p_value <= 0.01


def test_stationary_noise_has_no_significant_split() -> None:
    values = np.random.default_rng(2).normal(100, 10, 40)
    assert latest_change_points(values, p_value=0.01, permutations=199) == []


def test_the_latest_of_two_changes_is_found_by_searching_right_of_the_first() -> None:
    rng = np.random.default_rng(3)
    values = np.concatenate([rng.normal(100, 3, 20), rng.normal(140, 3, 15), rng.normal(110, 3, 10)])
    changes = latest_change_points(values, p_value=0.01, permutations=199)
    assert [change.index for change in changes][-2:] == [20, 35]


def test_one_run_far_off_the_median_is_a_finding_since_that_run() -> None:
    rng = np.random.default_rng(4)
    history = rng.normal(50, 2, 25)
    verdict = analyze_series(
        "GET /api/tutors/{tutor_id}/dashboard", "p95_ms", points([*history, 200]), PARAMS
    )
    assert verdict.status == "regression"
    limit = next(finding for finding in verdict.findings if finding.rule == "prediction limit")
    assert limit.since_run_id == "run-25" and limit.runs_since == 1
    assert limit.current == 200 and limit.baseline == pytest.approx(50, abs=2)
    assert "GET /api/tutors/{tutor_id}/dashboard: p95" in limit.describe()
    assert "since run run-25" in limit.describe()
    assert f"catches steps from {limit.min_step:+.0%}" in limit.describe()


def test_a_20_percent_step_is_confirmed_as_a_change_point_since_its_first_run() -> None:
    rng = np.random.default_rng(6)
    series = np.concatenate([rng.normal(100, 5, 40), rng.normal(120, 6, 3)])
    verdict = analyze_series(AGGREGATE, "p95_ms", points(series), PARAMS)
    change = next(finding for finding in verdict.findings if finding.rule == "change point")
    assert change.since_run_id == "run-40" and change.runs_since == 3
    assert change.relative_change == pytest.approx(0.2, abs=0.06)


def test_detection_rate_and_false_alarms_on_synthetic_histories() -> None:
    """A smaller version of bench/loadtest.py (b), with fixed seeds. 400 trials: the rate is about
    96% against a target of 95%, and 40 trials (±3.5 points) could not tell the two apart."""
    rng = np.random.default_rng(7)
    detected = 0
    for _ in range(400):
        series = np.concatenate([rng.normal(100, 5, 40), rng.normal(120, 6, 3)])
        detected += any(
            analyze_series(AGGREGATE, "p95_ms", points(series[: 41 + k]), PARAMS).status == "regression"
            for k in range(3)
        )
    noise = rng.normal(100, 10, 140)
    alarms = sum(
        analyze_series(AGGREGATE, "p95_ms", points(noise[:end]), PARAMS).status == "regression"
        for end in range(41, 141)
    )
    assert detected >= 0.95 * 400
    assert alarms <= 2


def test_a_latency_is_judged_on_a_log_scale() -> None:
    # 20 runs spread as a latency is, by a factor e^±0.25 around 30 ms: evenly spaced normal quantiles
    # in a shuffled order (no trend for a change point).
    from statistics import NormalDist

    spread = 0.25
    quantiles = [30 * np.exp(spread * NormalDist().inv_cdf((i + 0.5) / 20)) for i in range(20)]
    history = [quantiles[i] for i in np.random.default_rng(3).permutation(20)]
    raw = np.array(history)
    # Just below the log-scale limit: a move this history makes on its own, though on the raw
    # values, whose spread ignores the skew, it lies farther out than the same limit.
    judged = analyze_series(AGGREGATE, "p95_ms", points([*history, 30]), PARAMS)
    assert judged.baseline is not None and judged.min_step is not None
    flagged_from = judged.baseline * (1 + judged.min_step)
    below = analyze_series(AGGREGATE, "p95_ms", points([*history, 0.97 * flagged_from]), PARAMS)
    assert not below.findings
    assert (0.97 * flagged_from - raw.mean()) / raw.std(ddof=1) > np.log(flagged_from / 30) / spread
    above = analyze_series(AGGREGATE, "p95_ms", points([*history, 1.03 * flagged_from]), PARAMS)
    assert [finding.rule for finding in above.findings] == ["prediction limit"]


def test_the_limit_widens_on_a_short_history_and_narrows_on_a_long_one() -> None:
    """The same spread over 3, 5, 10 and 20 runs: the smallest flagged step shrinks as the history's
    own spread becomes better known (Student's t with n − 1 degrees of freedom)."""
    from statistics import NormalDist

    def history(n: int) -> list[float]:
        return [100 * np.exp(0.1 * NormalDist().inv_cdf((i + 0.5) / n)) for i in range(n)]

    steps = [
        analyze_series("GET /a", "p95_ms", points([*history(n), 100]), PARAMS).min_step
        for n in (3, 5, 10, 20)
    ]
    assert steps == sorted(steps, reverse=True) and steps[0] > 2 * steps[-1]


def test_the_false_alarm_level_is_shared_over_the_runs_series() -> None:
    """One series alone holds the whole run's level; among 20 series its limit is stricter, so a
    move flagged alone is not flagged among many."""
    rng = np.random.default_rng(9)
    levels = Levels.for_run(PARAMS, 20)
    assert levels.prediction == pytest.approx(1 - (1 - 0.8 * PARAMS.false_alarm_rate) ** (1 / 20))
    base = 100 * np.exp(rng.normal(0, 0.1, 10))
    alone = analyze_series("GET /a", "error_rate", points(base), PARAMS)  # only to read its min step
    assert alone.min_step is not None
    many = {(f"GET /{i}", "rps"): points(100 * np.exp(rng.normal(0, 0.1, 10))) for i in range(19)}
    solo = analyze_history({("GET /a", "p95_ms"): points(base)}, PARAMS)[0]
    crowded = analyze_history({("GET /a", "p95_ms"): points(base), **many}, PARAMS)[0]
    assert crowded.min_step > solo.min_step
    between = 100 * (1 + (solo.min_step + crowded.min_step) / 2)
    moved = points([*base, between])
    assert analyze_history({("GET /a", "p95_ms"): moved}, PARAMS)[0].status == "regression"
    assert analyze_history({("GET /a", "p95_ms"): moved, **many}, PARAMS)[0].status == "ok"


def test_only_a_move_in_the_bad_direction_is_a_regression() -> None:
    history = [100.0, 102.0, 98.0, 101.0, 99.0, 100.0]
    assert analyze_series(AGGREGATE, "p95_ms", points([*history, 50]), PARAMS).status == "ok"
    assert analyze_series(AGGREGATE, "rps", points([*history, 150]), PARAMS).status == "ok"
    assert analyze_series(AGGREGATE, "rps", points([*history, 50]), PARAMS).status == "regression"
    assert analyze_series(AGGREGATE, "cache_hit_rate", points([90, 91, 90, 89, 90, 60]), PARAMS).status == (
        "regression"
    )


def test_moves_below_the_metrics_resolution_are_ignored() -> None:
    # Locust's 1 ms buckets: 3 ms → 4 ms is +33% and nothing to report.
    assert analyze_series(AGGREGATE, "p95_ms", points([3, 3, 3, 3, 3, 4]), PARAMS).status == "ok"
    # An error rate of exactly 0 every night has MAD 0: the absolute minimum (0.5 points) decides.
    assert analyze_series(AGGREGATE, "error_rate", points([0, 0, 0, 0, 0.2]), PARAMS).status == "ok"
    assert analyze_series(AGGREGATE, "error_rate", points([0, 0, 0, 0, 2.0]), PARAMS).status == "regression"


def test_short_or_missing_history_gives_no_verdict() -> None:
    assert analyze_series(AGGREGATE, "p95_ms", points([10, 11, 50]), PARAMS).status == "insufficient history"
    gap = [*points([10, 11, 10, 12]), Point("now", T0, None)]
    assert analyze_series(AGGREGATE, "p95_ms", gap, PARAMS).status == "no data"


def test_every_series_is_judged_on_its_last_point() -> None:
    flat = points([20, 21, 20, 19, 20, 21])
    jump = points([20, 21, 20, 19, 20, 90])
    verdicts = analyze_history({("GET /a", "p95_ms"): flat, ("GET /b", "p95_ms"): jump}, PARAMS)
    assert [(verdict.scope, verdict.status) for verdict in verdicts] == [
        ("GET /a", "ok"),
        ("GET /b", "regression"),
    ]


def test_a_move_inside_the_runs_own_sampling_interval_is_not_a_finding() -> None:
    history = points([20, 21, 20, 19, 20, 21, 20, 22])
    wide = Point("now", T0 + timedelta(days=30), 60.0, low=21.0, high=None)  # few requests: 21..∞
    narrow = Point("now", T0 + timedelta(days=30), 60.0, low=55.0, high=64.0)
    assert analyze_series("GET /a", "p95_ms", [*history, wide], PARAMS).status == "ok"
    assert analyze_series("GET /a", "p95_ms", [*history, narrow], PARAMS).status == "regression"


def test_a_doubled_p95_on_a_history_of_four_runs_is_a_regression_not_a_provisional_note() -> None:
    verdict = analyze_series("GET /a", "p95_ms", points([20, 21, 20, 19, 40]), PARAMS)
    assert verdict.status == "regression" and verdict.history_runs == 4


def test_a_run_after_a_flagged_one_is_judged_against_the_level_before_it_since_the_steps_first_run() -> None:
    base = points([20, 21, 20, 19, 21])
    flagged = Point("step-1", T0 + timedelta(days=10), 60.0, baseline=False)
    verdict = analyze_series(
        "GET /a", "p95_ms", [*base, flagged, Point("step-2", T0 + timedelta(days=11), 61.0)], PARAMS
    )
    finding = next(f for f in verdict.findings if f.rule == "prediction limit")
    assert verdict.baseline == 20 and finding.since_run_id == "step-1" and finding.runs_since == 2


def test_a_flagged_run_stays_out_of_the_baseline_until_a_change_point_confirms_its_level() -> None:
    base = points([20, 21, 20, 19, 21, 20, 22, 20])
    flagged = Point("bad", T0 + timedelta(days=20), 90.0, baseline=False)
    now = Point("now", T0 + timedelta(days=21), 80.0)
    verdict = analyze_series("GET /a", "p95_ms", [*base, flagged, now], PARAMS)
    assert verdict.baseline == 20 and verdict.status == "regression"  # 90 did not move the baseline
    # Many runs at the new level: the change point is older than confirm_runs, the level is the norm.
    level = [Point(f"new-{i}", T0 + timedelta(days=30 + i), 90.0 + i % 3, baseline=False) for i in range(8)]
    settled = analyze_series(
        "GET /a", "p95_ms", [*base, *level, Point("now", T0 + timedelta(days=60), 91.0)], PARAMS
    )
    assert settled.status == "ok" and settled.baseline >= 90


def test_the_smallest_detectable_step_grows_with_spread_and_sampling_margin() -> None:
    calm = analyze_series("GET /a", "p95_ms", points([100, 101, 100, 99, 100, 101, 100]), PARAMS)
    noisy = analyze_series("GET /a", "p95_ms", points([100, 130, 80, 110, 95, 125, 100]), PARAMS)
    assert calm.min_step == pytest.approx(0.10)  # min_relative_change decides on a calm history
    assert noisy.min_step > 0.5
    margin = Point("now", T0 + timedelta(days=9), 100.0, low=80.0, high=130.0)
    calm_six = analyze_series("GET /a", "p95_ms", points([100, 101, 100, 99, 100, 101, 100]), PARAMS)
    sampled = analyze_series("GET /a", "p95_ms", [*points([100, 101, 100, 99, 100, 101]), margin], PARAMS)
    # Its own interval is wider than the history's spread: the limit's spread is floored by it,
    # and the minimum change must clear its 20 ms down to its lower bound.
    assert sampled.min_step >= calm_six.min_step + 0.20


def test_a_fresh_regression_after_a_confirmed_level_stays_out_of_the_baseline() -> None:
    base = points([20, 21, 20, 19, 21, 20, 22, 20])
    # The level's first runs were flagged; once a change point confirmed it, the next were judged ok.
    level = [Point(f"new-{i}", T0 + timedelta(days=30 + i), 90.0 + i % 3, baseline=i > 3) for i in range(8)]
    fresh = Point("fresh", T0 + timedelta(days=50), 130.0, baseline=False)
    verdict = analyze_series(
        "GET /a", "p95_ms", [*base, *level, fresh, Point("now", T0 + timedelta(days=51), 128.0)], PARAMS
    )
    assert (
        89 <= verdict.baseline <= 93 and verdict.history_runs == 8
    )  # the confirmed level, without the fresh 130


def test_a_run_with_findings_joins_no_baseline_unless_accepted_whatever_its_verdict_was_called() -> None:
    """History rows of flagged runs ("regression", and "provisional" from the rule before issue
    28) are out of the baseline; an accepted one is back in."""
    from tutormax_ops.collectors.sampling import Interval
    from tutormax_ops.loadtest.series import build_series

    verdicts = ["ok", "regression", "provisional", "ok", "regression"]
    history = [
        {
            "run_id": f"run-{i}",
            "started_at": T0 + timedelta(days=i),
            "p95_ms": 20.0,
            "regression_verdict": verdict,
        }
        for i, verdict in enumerate(verdicts)
    ]
    series = build_series(
        history,
        {AGGREGATE: {"p95_ms": Interval(21.0, None, None)}},
        "now",
        T0 + timedelta(days=9),
        accepted=("run-4",),
    )
    assert [point.baseline for point in series[(AGGREGATE, "p95_ms")]] == [
        True,
        False,
        False,
        True,
        True,
        True,
    ]
