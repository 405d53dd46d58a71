"""Run time sized from the profile's recent runs so every endpoint's p95 can be judged."""

from __future__ import annotations

from loadtest.factories import plan
from tutormax_ops.collectors.sampling import min_requests
from tutormax_ops.loadtest.sizing import judged_rates, run_time_for, size_plan

NEEDED = min_requests()
WARMUP = 0.25


def history(rates: dict[str, float], *, seconds: float = 40.0, judged_from: float = 15.0) -> list[dict]:
    judged = seconds - judged_from
    return [
        {
            "duration_s": seconds,
            "judged_from_s": judged_from,
            "endpoints": {name: {"requests": round(rate * judged)} for name, rate in rates.items()},
        }
        for _ in range(3)
    ]


def test_each_endpoints_rate_is_its_requests_over_the_judged_seconds() -> None:
    rates = judged_rates(history({"GET /a": 4.0, "GET /b": 0.4}))
    assert rates == {"GET /a": 4.0, "GET /b": 0.4}


def test_the_run_is_made_long_enough_for_the_rarest_endpoint_and_its_steady_state_holds_the_requests() -> (
    None
):
    smoke = plan(run_time_s=60)
    sized = size_plan(smoke, {"GET /a": 4.0, "GET /b": 0.8}, NEEDED, WARMUP, max_run_time_s=180)
    assert sized.run_time_s == run_time_for(smoke, 0.8, NEEDED, WARMUP) > 60
    judged_s = sized.run_time_s - sized.measure_after_s(WARMUP)
    assert 0.8 * judged_s >= NEEDED and not sized.unjudged
    assert "every endpoint reaches" in sized.sizing


def test_an_endpoint_the_maximum_cannot_judge_is_named_with_the_run_time_that_would() -> None:
    smoke = plan(run_time_s=60)
    sized = size_plan(smoke, {"GET /a": 4.0, "GET /rare": 0.1}, NEEDED, WARMUP, max_run_time_s=180)
    needed_s = run_time_for(smoke, 0.1, NEEDED, WARMUP)
    assert sized.run_time_s == 180 and sized.unjudged == ("GET /rare",)
    assert f"GET /rare ({needed_s} s)" in sized.sizing and needed_s > 180


def test_busy_endpoints_keep_the_planned_run_time_and_no_history_changes_nothing() -> None:
    smoke = plan(run_time_s=60)
    assert size_plan(smoke, {"GET /a": 10.0}, NEEDED, WARMUP, max_run_time_s=180).run_time_s == 60
    assert size_plan(smoke, {}, NEEDED, WARMUP, max_run_time_s=180) == smoke
