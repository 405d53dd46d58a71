"""The stress profile's steps and its knee, from the shape's schedule and the step's settled part.

- **Steps follow the schedule** the shape ran (`include/locust/stress_shape.py`): step k covers
  `[start + (k-1)·step_seconds, start + k·step_seconds)`. Rows are placed by their timestamp, never
  by the user count they observed, so a ramp-up's intermediate counts and the ramp-down after the
  stop make no step of their own.
- **Each step is measured on its settled part**: from `SETTLE_S` after it starts to its end. Locust's
  history rows carry the p95 of its last 10 s, so from then on a row describes that step alone.
  Throughput and errors come from the cumulative counts across the settled part; the step's p95 is
  the median of its settled rows' p95s (one noisy row moves it no more than a row), shown with their
  range. A step with fewer than `MIN_SETTLED_ROWS` settled rows (the run ended inside it) is dropped.
- **The sampling check**: where the run recorded its requests per second (`collectors.locust_seconds`), the step's
  own settled requests give a pooled p95 with its distribution-free interval (`collectors.sampling`).
- **The knee is the last step before the first failing one**: a pass above a failure is noise, not
  capacity. It is confirmed when the knee's pooled p95 is bounded below the target and the next
  step's failure is more than its sampling noise.
"""

from __future__ import annotations

import csv
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tutormax_ops.collectors.sampling import quantile_interval
from tutormax_ops.core.config import Settings
from tutormax_ops.core.settings_base import Targets
from tutormax_ops.loadtest.machine import judge_limits, read_samples
from tutormax_ops.loadtest.model import Knee, Limits, LoadStep, RunPlan, whole_ms
from tutormax_ops.loadtest.roster import read_generators

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

SETTLE_S = 10  # Locust's window of "current" response times: later rows hold this step alone
MIN_SETTLED_ROWS = 3
METHOD = (
    "Steps follow the shape's schedule. Each step is measured from {settle} s after it starts to its "
    "end, when Locust's 10 s window of current response times holds that step alone: throughput and "
    "errors from the cumulative counts, p95 as the median of those rows' p95s (their range beside it). "
    "The pooled p95 is that of the step's own settled requests, with its 95% interval; the knee is "
    "confirmed when that interval puts the knee under the target and the next step's failure beyond noise."
)


@dataclass(frozen=True)
class StepSchedule:
    started_at: float  # epoch seconds: the shape's start
    step_users: int
    step_seconds: float
    max_users: int

    def steps(self) -> list[tuple[int, float, float]]:
        """(users, start, end) of each step, in epoch seconds."""
        count = -(-self.max_users // self.step_users)
        return [
            (
                min((index + 1) * self.step_users, self.max_users),
                self.started_at + index * self.step_seconds,
                self.started_at + (index + 1) * self.step_seconds,
            )
            for index in range(count)
        ]


def read_schedule(
    folder: Path, history_csv: Path, *, step_users: int, step_seconds: float, max_users: int
) -> StepSchedule | None:
    """The schedule the shape ran: its start from the shape's own record, else (a run that wrote
    none) a second before the first history row with users."""
    from tutormax_ops.collectors.locust_seconds import read_seconds

    recorded = read_seconds(folder)
    started = [recorded.shape_started_at] if recorded and recorded.shape_started_at is not None else []
    if not started:
        rows = [row for row in _aggregate_rows(history_csv) if int(row["User Count"]) > 0]
        if not rows:
            return None
        started = [int(rows[0]["Timestamp"]) - 1.0]
    return StepSchedule(min(started), step_users, step_seconds, max_users)


def per_second_histograms(folder: Path) -> dict[int, dict[int, int]]:
    """Response-time histograms per epoch second, all endpoints and processes merged."""
    from tutormax_ops.collectors.locust_seconds import read_seconds

    recorded = read_seconds(folder)
    return recorded.client_histograms() if recorded else {}


def _aggregate_rows(history_csv: Path) -> list[dict[str, str]]:
    with history_csv.open(newline="") as handle:
        return [row for row in csv.DictReader(handle) if row["Name"] == "Aggregated" and not row["Type"]]


def load_steps(
    history_csv: Path,
    schedule: StepSchedule,
    targets: Targets,
    *,
    seconds: Mapping[int, Mapping[int, int]] | None = None,
    confidence: float = 0.95,
) -> list[LoadStep]:
    """Each scheduled step's figures from its settled rows (see the module); partial steps dropped."""
    rows = _aggregate_rows(history_csv)
    steps = []
    for users, start, end in schedule.steps():
        settled = [row for row in rows if start + SETTLE_S <= int(row["Timestamp"]) < end]
        if len(settled) < MIN_SETTLED_ROWS:
            continue
        first, last = settled[0], settled[-1]
        span = int(last["Timestamp"]) - int(first["Timestamp"])
        requests = int(last["Total Request Count"]) - int(first["Total Request Count"])
        failures = int(last["Total Failure Count"]) - int(first["Total Failure Count"])
        p95s = [float(row["95%"]) for row in settled if row["95%"] not in ("", "N/A")]
        error_rate = 100.0 * failures / requests if requests else None
        p95 = statistics.median(p95s) if p95s else None
        meets = (
            p95 is not None and p95 < targets.p95_api_ms and (error_rate or 0.0) < targets.error_rate_percent
        )
        pooled = _pooled(seconds or {}, int(start) + SETTLE_S, int(end), confidence)
        steps.append(
            LoadStep(
                users=users,
                start=start + SETTLE_S,
                seconds=float(span),
                requests=requests,
                rps=requests / span if span else 0.0,
                error_rate=error_rate,
                p95_ms=p95,
                p95_min_ms=min(p95s, default=None),
                p95_max_ms=max(p95s, default=None),
                rows=len(settled),
                failing_rows=sum(1 for value in p95s if value >= targets.p95_api_ms),
                meets_targets=meets,
                **pooled,
            )
        )
    return steps


def _pooled(
    seconds: Mapping[int, Mapping[int, int]], first: int, end: int, confidence: float
) -> dict[str, float | int | None]:
    histogram: dict[int, int] = {}
    for second in range(first, end):
        for bucket, count in seconds.get(second, {}).items():
            histogram[bucket] = histogram.get(bucket, 0) + count
    interval = quantile_interval(histogram, 0.95, confidence)
    return {
        "pooled_p95_ms": interval.value,
        "pooled_low_ms": interval.low,
        "pooled_high_ms": interval.high,
        "pooled_requests": sum(histogram.values()),
    }


def find_knee(steps: Sequence[LoadStep], targets: Targets) -> Knee | None:
    """The last step before the first failing one (None when the first step already failed), and
    whether the run's own samples confirm it."""
    failing = next((index for index, step in enumerate(steps) if not step.meets_targets), None)
    if failing == 0 or not steps:
        return None
    knee = steps[-1] if failing is None else steps[failing - 1]
    after = None if failing is None else steps[failing]
    reasons = []
    if knee.pooled_high_ms is None:
        reasons.append(f"the knee's p95 has no upper bound from its {knee.pooled_requests} recorded requests")
    elif knee.pooled_high_ms >= targets.p95_api_ms:
        reasons.append(
            f"the knee's pooled p95 could be as high as {knee.pooled_high_ms:.0f} ms "
            f"(target < {targets.p95_api_ms:g} ms)"
        )
    failed_on_errors = after is not None and (after.error_rate or 0.0) >= targets.error_rate_percent
    if after is not None and not failed_on_errors:
        if after.pooled_low_ms is None:
            reasons.append(f"the next step's p95 has no lower bound from {after.pooled_requests} requests")
        elif after.pooled_low_ms < targets.p95_api_ms:
            reasons.append(
                f"the next step's pooled p95 could be as low as {after.pooled_low_ms:.0f} ms: its "
                "failure is within sampling noise"
            )
    confirmation = (
        "; ".join(reasons)
        if reasons
        else "confirmed by the steps' own requests: "
        + f"knee p95 {whole_ms(knee.pooled_p95_ms)} ms ({whole_ms(knee.pooled_low_ms)}–{whole_ms(knee.pooled_high_ms)})"
        + (
            ""
            if after is None or failed_on_errors
            else f", next step {whole_ms(after.pooled_p95_ms)} ms ({whole_ms(after.pooled_low_ms)}–{whole_ms(after.pooled_high_ms)})"
        )
    )
    return Knee(knee, after, not reasons, confirmation)


def measure_stress(
    plan: RunPlan,
    folder: Path,
    samples_csv: ObjectStoragePath,
    outcome: Mapping[str, Any],
    settings: Settings,
    targets: Targets,
) -> tuple[list[LoadStep], Knee | None, Limits | None]:
    """A stored stress run's steps, knee and limits, from the files in `folder` (the history CSV and
    the shape's per-second records) and the runner's CPU samples."""
    import os
    from datetime import datetime

    assert plan.step_users is not None and plan.step_seconds is not None
    history = folder / "locust_stats_history.csv"
    schedule = read_schedule(
        folder, history, step_users=plan.step_users, step_seconds=plan.step_seconds, max_users=plan.users
    )
    if schedule is None:
        return [], None, None
    confidence = settings.loadtest.regression.confidence
    steps = load_steps(
        history, schedule, targets, seconds=per_second_histograms(folder), confidence=confidence
    )
    limits = None
    if samples_csv.exists() and steps:
        launched_at = datetime.fromisoformat(outcome["started_at"]).timestamp()
        loadtest = settings.loadtest
        limits = judge_limits(
            read_samples(samples_csv.read_text(), launched_at),
            steps,
            cores=os.cpu_count() or 1,  # the analysis runs where the run ran: one worker, one task group
            generators=read_generators(folder, plan),
            host_saturation_percent=loadtest.host_saturation_percent,
            cpu_saturation_percent=loadtest.cpu_saturation_percent,
            max_saturated_fraction=loadtest.max_saturated_fraction,
        )
    return steps, find_knee(steps, targets), limits


def stress_chart(steps: Sequence[LoadStep], knee: Knee | None, targets: Targets, *, title: str) -> bytes:
    """req/s and p95 against users, one axis each, with both targets drawn and the knee marked."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    from tutormax_ops.core.reports import figure_png

    users = [step.users for step in steps]
    figure, rate_axes = pyplot.subplots(figsize=(8, 3.6), dpi=100)
    try:
        p95_axes = rate_axes.twinx()
        rate_axes.plot(users, [step.rps for step in steps], marker="o", color="tab:blue", label="req/s")
        p95_axes.plot(
            users,
            [float("nan") if step.p95_ms is None else step.p95_ms for step in steps],
            marker="s",
            color="tab:red",
            label="p95 ms (median of settled rows)",
        )
        low = [step.p95_ms - step.p95_min_ms if step.p95_ms is not None else 0 for step in steps]
        high = [step.p95_max_ms - step.p95_ms if step.p95_ms is not None else 0 for step in steps]
        p95_axes.errorbar(users, [s.p95_ms or float("nan") for s in steps], yerr=[low, high], fmt="none",
                          ecolor="tab:red", alpha=0.4, capsize=3)  # fmt: skip
        if targets.throughput_rps > 0:
            rate_axes.axhline(targets.throughput_rps, color="tab:blue", linestyle="--", linewidth=1,
                              label=f"target ≥ {targets.throughput_rps:g} req/s")  # fmt: skip
        p95_axes.axhline(targets.p95_api_ms, color="tab:red", linestyle="--", linewidth=1,
                         label=f"target p95 < {targets.p95_api_ms:g} ms")  # fmt: skip
        if knee is not None:
            rate_axes.axvline(knee.step.users, color="tab:green", linewidth=2, alpha=0.6,
                              label=f"knee: {knee.step.users} users")  # fmt: skip
        rate_axes.set_xlabel("users")
        rate_axes.set_ylabel("req/s", color="tab:blue")
        p95_axes.set_ylabel("p95 ms", color="tab:red")
        rate_axes.set_ylim(bottom=0)
        p95_axes.set_ylim(bottom=0)
        rate_axes.set_title(title)
        rate_axes.grid(alpha=0.3)
        handles = rate_axes.get_legend_handles_labels()
        more = p95_axes.get_legend_handles_labels()
        rate_axes.legend(handles[0] + more[0], handles[1] + more[1], fontsize="x-small", loc="upper left")
        return figure_png(figure)
    finally:
        pyplot.close(figure)
