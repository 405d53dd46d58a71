"""Validity: whether a run's measurements can be trusted, with every reason they cannot.

Judged from what `collectors.locust.parse_run` read, the runner's CPU samples and the settings;
a run that is not valid is stored, reported and never compared or used as a baseline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tutormax_ops.collectors.locust import LocustRun


@dataclass(frozen=True)
class Stall:
    """Seconds in which completed requests fell below a fraction of the steady rate, in a row."""

    start: datetime
    seconds: int
    completed: int
    steady_per_second: float

    def describe(self) -> str:
        return (
            f"the service stalled at {self.start:%H:%M:%S} UTC for {self.seconds} s: {self.completed} requests "
            f"completed in that time against a steady {self.steady_per_second:.1f}/s"
        )


@dataclass(frozen=True)
class RunValidity:
    valid: bool
    reasons: tuple[str, ...]


def validate_run(
    run: LocustRun,
    *,
    planned_duration_s: float,
    duration_tolerance_s: float = 1.0,
    cpu_samples: Sequence[float] = (),
    cpu_saturation_percent: float = 90.0,
    host_cpu_samples: Sequence[float] = (),
    host_saturation_percent: float = 95.0,
    max_saturated_fraction: float = 0.25,
    stall_min_s: int = 5,
    stall_fraction: float = 0.1,
) -> RunValidity:
    """Whether the run's measurements can be trusted, with every reason they cannot.

    - No HTML report: locust was killed (SIGTERM) or crashed before writing it.
    - Shorter than planned minus `duration_tolerance_s`, by Locust's own log: from the line that
      sets its run-time timer to the line that says it fired (a shape run: "Shape test starting"
      to "Shape test stopping"). A timer fires late on a busy machine, never early (the locustfiles
      refresh gevent's clock, see `include/locust/loop_clock.py`), so 1 s absorbs the log's
      millisecond stamps and a shape's 1 s ticks, whatever the load. Without a log, the span from
      the first to the last request stands in.
    - A stall: `stall_min_s` or more seconds in a row in which fewer than `stall_fraction` of the
      steady state's median completions per second came back (a gap, or a dip far below it).
    - The CPU warning in the log, or more than `max_saturated_fraction` of the supplied CPU samples
      of the generator above `cpu_saturation_percent`: a saturated generator measures itself.
      Locust's own check samples every 10 s and never fires in runs shorter than about 20 s, which
      is why samples taken by the caller (e.g. psutil on locust's process group) are accepted.
    - The same for the whole machine (`host_cpu_samples`, % of all cores, at
      `host_saturation_percent`): when the generator and the service share a saturated host, every
      request waits for a core, and the figures say so about the machine, not about the service.
    - No requests at all.

    A saturated generator or host is also what widens the gap between Locust's p95 and the service's
    own over all endpoints (`loadtest.gap`): when that gap is material, the saturation's reason names it.
    """
    from tutormax_ops.loadtest.gap import material_gap

    # "…: 21 ms of the 140 ms client p95 was spent outside the handler", or nothing when it is negligible.
    gap = material_gap(run.aggregate.p95_ms, run.aggregate.server_p95_ms)
    outside = f": {gap}" if gap else ""
    reasons: list[str] = []
    if not run.html_report_present:
        reasons.append("the HTML report is missing: locust was stopped (SIGTERM) or crashed")
    if run.duration_s is None or run.duration_s < planned_duration_s - duration_tolerance_s:
        ran = "an unknown time" if run.duration_s is None else f"{run.duration_s:.1f} s"
        reasons.append(
            f"the run lasted {ran} of the planned {planned_duration_s:g} s (by the {run.duration_source}, "
            f"tolerance {duration_tolerance_s:g} s)"
        )
    if (
        stall := find_stall(run.completed_per_second, min_s=stall_min_s, fraction=stall_fraction)
    ) is not None:
        reasons.append(stall.describe())
    if run.cpu_warning:
        reasons.append(f"locust logged its CPU warning: the load generator was above 90% CPU{outside}")
    if cpu_samples:
        saturated = sum(1 for sample in cpu_samples if sample > cpu_saturation_percent) / len(cpu_samples)
        if saturated > max_saturated_fraction:
            reasons.append(
                f"the load generator's CPU was above {cpu_saturation_percent:g}% in "
                f"{saturated:.0%} of {len(cpu_samples)} samples{outside}"
            )
    if host_cpu_samples:
        busy = sum(1 for sample in host_cpu_samples if sample > host_saturation_percent) / len(
            host_cpu_samples
        )
        if busy > max_saturated_fraction:
            reasons.append(
                f"the machine's CPU was above {host_saturation_percent:g}% of all cores in {busy:.0%} of "
                f"{len(host_cpu_samples)} samples: latencies measured the host's queue, not the service"
                + (f"; {gap}" if gap else "")
            )
    if run.aggregate.requests == 0:
        reasons.append("no requests were recorded")
    return RunValidity(valid=not reasons, reasons=tuple(reasons))


def find_stall(
    completed_per_second: Sequence[tuple[int, int]], *, min_s: int, fraction: float
) -> Stall | None:
    """The longest run of at least `min_s` seconds below `fraction` of the median completions per
    second, or None."""
    import statistics

    if not completed_per_second:
        return None
    steady = statistics.median(count for _, count in completed_per_second)
    longest: list[tuple[int, int]] = []
    current: list[tuple[int, int]] = []
    for second, count in completed_per_second:
        current = [*current, (second, count)] if count < fraction * steady else []
        if len(current) > len(longest):
            longest = current
    if len(longest) < min_s:
        return None
    return Stall(
        datetime.fromtimestamp(longest[0][0], UTC), len(longest), sum(count for _, count in longest), steady
    )
