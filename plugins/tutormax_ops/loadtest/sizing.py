"""Run time from the profile's recent runs: long enough that every endpoint's steady state reaches
the requests its p95 needs (`collectors.sampling.min_requests`), within the profile's
`max_run_time_s`. An endpoint a longer run would still not judge is named, with the run time
that would judge it."""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from tutormax_ops.loadtest.model import RunPlan

ROUND_TO_S = 5  # run times in whole 5 s: a few requests' margin, and a readable figure


def judged_rates(history: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Each endpoint's requests per judged second, the median over the runs that record it (the
    judged seconds: the run's length after `judged_from_s`)."""
    rates: dict[str, list[float]] = {}
    for run in history:
        seconds = (run.get("duration_s") or 0) - (run.get("judged_from_s") or 0)
        if seconds <= 0:
            continue
        for name, figures in run["endpoints"].items():
            rates.setdefault(name, []).append((figures.get("requests") or 0) / seconds)
    return {name: statistics.median(values) for name, values in rates.items()}


def run_time_for(plan: RunPlan, rate: float, needed: int, warmup_fraction: float) -> int:
    """The shortest run time (whole ROUND_TO_S) whose steady state holds `needed` requests at
    `rate`: the judged seconds are at least T(1 − warm-up) − the ramp-up (`RunPlan.measure_after_s`)."""
    spawn_s = plan.users / plan.spawn_rate
    seconds = (needed / rate + spawn_s) / (1 - warmup_fraction)
    return ROUND_TO_S * math.ceil(seconds / ROUND_TO_S)


def size_plan(
    plan: RunPlan, rates: Mapping[str, float], needed: int, warmup_fraction: float, max_run_time_s: int
) -> RunPlan:
    """The plan with the run time every endpoint needs, never shorter than planned nor longer than
    `max_run_time_s`; endpoints the maximum leaves short are named in `sizing`."""
    wanted = {
        name: run_time_for(plan, rate, needed, warmup_fraction) for name, rate in rates.items() if rate > 0
    }
    if not wanted:
        return plan
    run_time = min(max(plan.run_time_s, *wanted.values()), max(max_run_time_s, plan.run_time_s))
    short = {name: seconds for name, seconds in sorted(wanted.items()) if seconds > run_time}
    if short:
        named = ", ".join(f"{name} ({seconds} s)" for name, seconds in short.items())
        note = (
            f"run time {run_time} s (the maximum): left unjudged, under {needed} requests in the steady "
            f"state at the recent runs' rates, with the run time that would judge each: {named}"
        )
    else:
        note = f"run time {run_time} s: every endpoint reaches {needed} requests at the recent runs' rates"
    return replace(plan, run_time_s=run_time, sizing=note, unjudged=tuple(short))
