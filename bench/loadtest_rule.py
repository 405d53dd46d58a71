"""Phase (g) of bench/loadtest.py: the regression rule on simulated runs, as the DAG judges a run
(`regression.analyze_history` over all of its series at once, so the false-alarm level is shared
over them and the p95 spreads pooled). Imported by bench/loadtest.py, not run on its own.

Each run is drawn the way a run makes it (`loadtest_real._response_times`): per series its
requests as response times in whole ms, the p95 and its order-statistic interval taken from them,
the series' level moved from run to run by a drift calibrated to its spread; and an error-rate
series per endpoint at 0 errors, as the smoke runs have, so a run judges as many series as the
DAG would. Heavy tails: the same with the drift drawn from Student's t with 3 df.

- `fa_per_run_pct`: the share of unchanged runs with any finding, per history length.
- `detect_pct`: a step on one endpoint (the slowest series: at 12–15 ms Locust's whole ms alone
  make a 7% spread), the share of trials whose run is a
  regression on that endpoint, per history length and run-to-run spread (each series' spread set to
  it, 1,000 requests each so the p95's own sampling stays below it).
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

import numpy as np

from loadtest_real import T0, SeriesNoise, _response_times, calibrated_drift, relative_spread
from tutormax_ops.collectors.sampling import Interval, quantile_interval
from tutormax_ops.loadtest.regression import Point, analyze_history

FA_LENGTHS = (3, 5, 10, 20, 40)
DETECT_LENGTHS = (3, 5, 10, 20)
STEPS = (0.25, 0.5, 1.0, 2.0)
SPREADS = (0.05, 0.15)
DETECT_REQUESTS = 1000
T3_SCALE = 1.4826 * 0.7649  # 1.4826 × MAD of Student's t with 3 df: the drift maps onto its σ


def _p95(series: SeriesNoise, drift: float, rng: np.random.Generator, tails: bool, step: float) -> Interval:
    shift = drift * rng.standard_t(3) / T3_SCALE if tails else rng.normal(0, drift)
    moved = dataclasses.replace(series, level_ms=series.level_ms * np.exp(shift) * (1 + step))
    values, counts = np.unique(_response_times(moved, 0.0, rng), return_counts=True)
    return quantile_interval(dict(zip(values.tolist(), counts.tolist(), strict=True)))


def _judge(
    noise: list[SeriesNoise],
    drifts: dict[str, float],
    length: int,
    rng: np.random.Generator,
    params: Any,
    *,
    tails: bool = False,
    step: float = 0.0,
) -> set[str]:
    """One run after `length` unchanged ones, `step` on the first series: the scopes flagged."""
    series: dict[tuple[str, str], list[Point]] = {}
    for index, one in enumerate(noise):
        runs = [_p95(one, drifts[one.name], rng, tails, 0.0) for _ in range(length)]
        runs.append(_p95(one, drifts[one.name], rng, tails, step if index == 0 else 0.0))
        series[(one.name, "p95_ms")] = [
            Point(f"run-{i}", T0 + timedelta(days=i), p.value, p.low, p.high) for i, p in enumerate(runs)
        ]
        no_errors = 100 * (1 - 0.05 ** (1 / one.requests))  # Clopper-Pearson's upper bound at 0 errors
        series[(one.name, "error_rate")] = [
            Point(f"run-{i}", T0 + timedelta(days=i), 0.0, 0.0, no_errors) for i in range(length + 1)
        ]
    return {verdict.scope for verdict in analyze_history(series, params) if verdict.findings}


def false_alarms_by_length(
    noise: list[SeriesNoise], params: Any, trials: int, rng: np.random.Generator, *, tails: bool
) -> dict[str, float]:
    drifts = {one.name: calibrated_drift(one, rng) for one in noise}
    return {
        str(length): round(
            100
            * sum(bool(_judge(noise, drifts, length, rng, params, tails=tails)) for _ in range(trials))
            / trials,
            2,
        )
        for length in FA_LENGTHS
    }


def detection(noise: list[SeriesNoise], params: Any, trials: int, rng: np.random.Generator) -> dict[str, Any]:
    """detect_pct[spread][length][step], and the spread each setting really showed."""
    result: dict[str, Any] = {}
    shown: dict[str, float] = {}
    for spread in SPREADS:
        slowest_first = sorted(noise, key=lambda one: -one.level_ms)
        sized = [dataclasses.replace(one, spread=spread, requests=DETECT_REQUESTS) for one in slowest_first]
        drifts = {one.name: calibrated_drift(one, rng) for one in sized}
        first = sized[0]
        shown[f"{spread:.0%}"] = round(
            100
            * relative_spread([_p95(first, drifts[first.name], rng, False, 0.0).value for _ in range(300)]),
            1,
        )
        result[f"{spread:.0%}"] = {
            str(length): {
                f"+{step:.0%}": round(
                    100
                    * sum(
                        first.name in _judge(sized, drifts, length, rng, params, step=step)
                        for _ in range(trials)
                    )
                    / trials,
                    1,
                )
                for step in STEPS
            }
            for length in DETECT_LENGTHS
        }
    return {"detect_pct": result, "detect_spread_shown_pct": shown}


def bench_rule(noise: list[SeriesNoise], params: Any, trials: int) -> dict[str, Any]:
    rng = np.random.default_rng(28)
    fa = false_alarms_by_length(noise, params, trials, rng, tails=False)
    print(
        f"(g) unchanged runs with any finding, {trials} per length: {fa} (target ≤ 1 at every length)",
        flush=True,
    )
    fa_t3 = false_alarms_by_length(noise, params, trials, rng, tails=True)
    print(f"(g) the same with heavy-tailed (t3) drift: {fa_t3}", flush=True)
    detect = detection(noise, params, trials // 2, rng)
    print(
        f"(g) a step on one endpoint, regression within one run ({trials // 2} trials each): {detect}",
        flush=True,
    )
    table = detect["detect_pct"]
    return {
        "fa_per_run_pct": fa,
        "fa_per_run_t3_pct": fa_t3,
        **detect,
        "fa_per_run_max_pct": max(fa.values()),
        "fa_per_run_t3_max_pct": max(fa_t3.values()),
        "detect_100_at_5_pct": table["15%"]["5"]["+100%"],
        "detect_50_at_10_pct": table["15%"]["10"]["+50%"],
        "detect_25_at_20_pct": table["5%"]["20"]["+25%"],
    }
