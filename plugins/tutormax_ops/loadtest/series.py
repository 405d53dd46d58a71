"""The values one run adds to its profile's history series, and the series the regression rules judge.

A run contributes what its verdicts judged (`LocustRun.judged_figures`): the steady state's figures
where the run recorded its requests per second, else the whole run's; a stress run, its knee.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from tutormax_ops.collectors.sampling import Interval
from tutormax_ops.loadtest.model import Knee, Limits
from tutormax_ops.loadtest.verdict import endpoint_name

if TYPE_CHECKING:
    from tutormax_ops.collectors.locust import EndpointMetrics, LocustRun
    from tutormax_ops.loadtest.regression import Point


def knee_values(knee: Knee | None, limits: Limits | None) -> dict[str, dict[str, Interval]]:
    """A stress run's figures for the history: its knee, not the whole run's mix of steps; none
    when the machine set the limit, which says nothing of the service."""
    from tutormax_ops.loadtest.model import LIMITED_BY_MACHINE
    from tutormax_ops.loadtest.regression import AGGREGATE

    if knee is None or (limits is not None and limits.limited_by == LIMITED_BY_MACHINE):
        return {}
    return {
        AGGREGATE: {
            "knee_rps": Interval(knee.step.rps, None, None),
            # The median of the step's rows: the pooled interval bounds another statistic.
            "knee_p95_ms": Interval(knee.step.p95_ms, None, None),
        }
    }


def current_values(
    run: LocustRun, server: Mapping[str, Any], min_requests: int
) -> dict[str, dict[str, Interval]]:
    """This run's values per scope and metric, as the history stores them, with their sampling
    intervals where the run's histograms give them."""
    from tutormax_ops.loadtest.regression import AGGREGATE

    def plain(value: float | None) -> Interval:
        return Interval(value, None, None)

    judged = run.judged_figures
    values: dict[str, dict[str, Interval]] = {
        AGGREGATE: {
            "p95_ms": _p95(judged.aggregate),
            "error_rate": _error_rate(judged.aggregate),
            "rps": plain(judged.aggregate.steady_rps),
            "cache_hit_rate": plain(server["cache_hit_rate"]),
            "query_p95_ms": plain(server["query_p95_ms"]),
        }
    }
    for endpoint in judged.endpoints:
        if endpoint.requests >= min_requests:  # fewer: the p95 has no upper bound, so it is not judged
            values[endpoint_name(endpoint)] = {"p95_ms": _p95(endpoint), "error_rate": _error_rate(endpoint)}
    return values


def _p95(metrics: EndpointMetrics) -> Interval:
    return Interval(metrics.p95_ms, metrics.p95_low_ms, metrics.p95_high_ms)


def _error_rate(metrics: EndpointMetrics) -> Interval:
    return Interval(metrics.error_rate_percent, metrics.error_rate_low, metrics.error_rate_high)


FLAGGED = ("regression", "provisional")  # a run's regression verdicts that keep it out of the baseline


def build_series(
    history: Sequence[Mapping[str, Any]],
    current: Mapping[str, Mapping[str, Interval]],
    run_id: str,
    started_at: datetime,
    *,
    accepted: Sequence[str] = (),
) -> dict[tuple[str, str], list[Point]]:
    """One series per (scope, metric) the current run has a value for: history oldest first, this
    run last. A run flagged as a regression and not in `accepted` is marked out of the baseline."""
    from tutormax_ops.loadtest.regression import AGGREGATE, Point

    series: dict[tuple[str, str], list[Point]] = {}
    for scope, metrics in current.items():
        for metric, measured in metrics.items():
            if measured.value is None:
                continue
            points = [
                Point(
                    past["run_id"],
                    past["started_at"],
                    past.get(metric) if scope == AGGREGATE else past["endpoints"].get(scope, {}).get(metric),
                    # "provisional": findings of the rule before issue 28, kept out alike
                    baseline=past.get("regression_verdict") not in FLAGGED or past["run_id"] in accepted,
                )
                for past in history
            ]
            here = Point(run_id, started_at, measured.value, measured.low, measured.high)
            series[(scope, metric)] = [*points, here]
    return series
