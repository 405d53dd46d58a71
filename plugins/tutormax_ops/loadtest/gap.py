"""Where the gap between Locust's p95 and the service's own p95 was spent, and on which side.

The service's `X-Response-Time` is its handler's time; Locust's figure adds everything outside it:
the generator (scheduling its greenlets, parsing), the network, and the service's accept queue (a
request waiting for a free worker before the handler's clock starts). The gap is
`client p95 − server p95`, per endpoint and over all endpoints (both p95s as `collectors.locust`
reports them, the very figures the target checks show side by side). The CPU samples the runner took
each second over the steady window (from `RunOutcome.window_opened_s`, the moment the server-side
window opened, i.e. `plan.measure_after_s` after the first user; the same window the server-side
figures use) to the moment the load stopped (Locust's report writing after it is no load) say
which side is likely. A resource counts as **busy** when it was above its threshold in at least
`BUSY_SHARE` (10%) of the window's seconds, and in at least `BUSY_MIN_SECONDS` (2) of them: the p95
is made of the slowest 5% of requests, so queueing in a tenth of the seconds is enough to fill that
tail, while one second alone is a blip (a neighbour's burst) that a short run must not turn into a
verdict. The rules, in order:

1. No server p95 (the service sent no `X-Response-Time`): nothing to attribute.
2. **Negligible** when the gap is below `NEGLIGIBLE_MS` (5 ms) or below `NEGLIGIBLE_SHARE` (10%) of
   the client p95, and never attributed. Why: Locust rounds both p95s into buckets of 1 ms below
   100 ms and 10 ms from 100 to 999 ms (up to 10% of the figure); and on a healthy machine the
   loopback and the generator alone cost 3.5–4.9 ms at p95 (paired per-request timings against the
   reference service at 50 users, issue 8). A gap inside either is not evidence of anything.
3. **The load generator** when its busiest process was busy above `cpu_saturation_percent` of its
   one core (a gevent process cannot use more).
4. **This machine** when the host was busy above `host_saturation_percent` of all cores: every
   process, the generator's and the service's alike, waited for a core.
5. **The service's accept queue** when the service listens here and its processes were busy above
   `cpu_saturation_percent` of the cores they can use (one per process, at most the machine's): its
   workers were busy, so new requests queued before the handler's clock started.
6. Otherwise **network or the service's accept queue: neither side's CPU was busy**; and when no
   sample covers the window, "unknown: no CPU samples over the steady window".

The line shows each role's median and p90 (nearest rank). The side is a likelihood, not a proof:
`validity` decides whether saturation makes the run invalid (more than `max_saturated_fraction` of
all samples) and then names the gap in its reason.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tutormax_ops.loadtest.machine import cpu_by_role

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

    from tutormax_ops.collectors.locust import EndpointMetrics, LocustRun
    from tutormax_ops.core.loadtest_settings import LoadTest
    from tutormax_ops.loadtest.model import RunPlan

NEGLIGIBLE_MS = 5.0
NEGLIGIBLE_SHARE = 0.10
BUSY_SHARE = 0.10
BUSY_MIN_SECONDS = 2
NEGLIGIBLE = "negligible"
GENERATOR = "the load generator"
MACHINE = "this machine (generator and service share its cores)"
MACHINE_REMOTE = "this machine (the generator's host)"
ACCEPT_QUEUE = "the service's accept queue"
NEITHER = "network or the service's accept queue: neither side's CPU was busy"
NO_SAMPLES = "unknown: no CPU samples over the steady window"


@dataclass(frozen=True)
class Spread:
    """One role's samples over the window, in % (see `CpuWindow` for of what)."""

    values: tuple[float, ...]

    @property
    def median(self) -> float:
        import statistics

        return statistics.median(self.values)

    @property
    def p90(self) -> float:
        ordered = sorted(self.values)
        return ordered[math.ceil(0.9 * len(ordered)) - 1]

    def busy(self, threshold: float) -> bool:
        """Above `threshold` in at least BUSY_SHARE of the samples and BUSY_MIN_SECONDS of them."""
        above = sum(1 for value in self.values if value > threshold)
        return above >= BUSY_MIN_SECONDS and above >= BUSY_SHARE * len(self.values)

    def describe(self) -> str:
        return f"{self.median:.0f}% median, {self.p90:.0f}% p90"


@dataclass(frozen=True)
class CpuWindow:
    samples: int  # seconds sampled in the steady window
    generator: Spread | None  # the busiest locust process per sample, % of one core
    host: Spread | None  # the whole machine, % of all cores
    service: Spread | None  # the service's processes together, % of one core; None when not local
    service_cores: int = 0  # the cores the service's processes can use: one each, at most the machine's


@dataclass(frozen=True)
class GapAttribution:
    scope: str  # an endpoint, or "all endpoints"
    client_p95_ms: float
    server_p95_ms: float
    side: str  # NEGLIGIBLE, GENERATOR, MACHINE, MACHINE_REMOTE, ACCEPT_QUEUE, NEITHER or NO_SAMPLES

    @property
    def gap_ms(self) -> float:
        return self.client_p95_ms - self.server_p95_ms

    @property
    def share(self) -> float:
        """The gap as a fraction of the client p95."""
        return self.gap_ms / self.client_p95_ms if self.client_p95_ms > 0 else 0.0

    @property
    def material(self) -> bool:
        return self.side != NEGLIGIBLE

    def outside(self) -> str:
        return (
            f"{self.gap_ms:.0f} ms of the {self.client_p95_ms:g} ms client p95 was spent outside the handler"
        )


@dataclass(frozen=True)
class GapReport:
    aggregate: GapAttribution | None
    endpoints: tuple[GapAttribution, ...]
    cpu: CpuWindow

    def line(self) -> str:
        """One line for the report and the email, under the targets table."""
        if self.aggregate is None:
            return "Client/server gap: not measured (the service sent no X-Response-Time)."
        gap = self.aggregate
        head = (
            f"Outside the handler (Locust's p95 − the service's X-Response-Time p95, all endpoints): "
            f"{gap.gap_ms:+.0f} ms of the {gap.client_p95_ms:g} ms client p95 ({gap.share:.0%})"
        )
        side = (
            f"{NEGLIGIBLE} (below {NEGLIGIBLE_MS:g} ms or {NEGLIGIBLE_SHARE:.0%} of the client p95)"
            if not gap.material
            else f"likely {gap.side}"
        )
        material = [f"{e.scope} {e.gap_ms:+.0f} ms ({e.side})" for e in self.endpoints if e.material]
        parts = [f"{head}: {side}.", f"CPU over the steady window: {_cpu_words(self.cpu)}."]
        if material:
            parts.append(f"Endpoints with a material gap: {'; '.join(material)}.")
        return " ".join(parts)


def material_gap(client_p95_ms: float | None, server_p95_ms: float | None) -> str:
    """What a saturated generator's or host's invalid reason adds when the gap is material (rule 2):
    "21 ms of the 140 ms client p95 was spent outside the handler"; else ""."""
    if (
        client_p95_ms is None
        or server_p95_ms is None
        or negligible(client_p95_ms - server_p95_ms, client_p95_ms)
    ):
        return ""
    return GapAttribution("", float(client_p95_ms), float(server_p95_ms), "").outside()


def negligible(gap_ms: float, client_p95_ms: float) -> bool:
    return gap_ms < NEGLIGIBLE_MS or gap_ms < NEGLIGIBLE_SHARE * client_p95_ms


def attribute_gap(
    scope: str,
    client_p95_ms: float | None,
    server_p95_ms: float | None,
    cpu: CpuWindow,
    *,
    cpu_saturation_percent: float,
    host_saturation_percent: float,
) -> GapAttribution | None:
    """The rules of this module's docstring, for one scope."""
    if client_p95_ms is None or server_p95_ms is None:
        return None
    gap = client_p95_ms - server_p95_ms
    if negligible(gap, client_p95_ms):
        side = NEGLIGIBLE
    elif cpu.samples == 0:
        side = NO_SAMPLES
    elif cpu.generator is not None and cpu.generator.busy(cpu_saturation_percent):
        side = GENERATOR
    elif cpu.host is not None and cpu.host.busy(host_saturation_percent):
        side = MACHINE if cpu.service is not None else MACHINE_REMOTE
    elif (
        cpu.service is not None
        and cpu.service_cores > 0
        and cpu.service.busy(cpu_saturation_percent * cpu.service_cores)
    ):
        side = ACCEPT_QUEUE
    else:
        side = NEITHER
    return GapAttribution(scope, float(client_p95_ms), float(server_p95_ms), side)


def cpu_window(
    rows: Sequence[Mapping[str, Any]],
    *,
    window_opened_s: float,
    load_ended_s: float,
    service_processes: int,
    cores: int,
) -> CpuWindow:
    """The runner's samples (`cpu_samples.csv` rows: elapsed_s, role, pid, cpu_percent) from
    `window_opened_s` to `load_ended_s` (seconds after launch), per role."""
    split = cpu_by_role(rows, start_s=window_opened_s, end_s=load_ended_s)
    return CpuWindow(
        samples=len(split.generator) or len(split.host),
        generator=spread(split.generator),
        host=spread(split.host),
        service=spread(split.service),
        service_cores=min(service_processes, cores) if split.service else 0,
    )


def spread(values: Sequence[float]) -> Spread | None:
    return Spread(tuple(values)) if values else None


def judge_gap(
    run: LocustRun | None,
    plan: RunPlan,
    samples_csv: ObjectStoragePath,
    outcome: Mapping[str, Any],
    loadtest: LoadTest,
    *,
    min_requests: int = 1,
) -> GapReport | None:
    """The gap over all endpoints and per endpoint, with the CPU of the steady window; None without
    results, and for a stress run, whose mix of steps `machine.judge_limits` reads instead. An
    endpoint with fewer than `min_requests` has no p95 worth a gap (`collectors.sampling`): left out,
    as its target check is."""
    import os

    from tutormax_ops.loadtest.regression import AGGREGATE
    from tutormax_ops.loadtest.verdict import endpoint_name

    if run is None or plan.stress:
        return None
    opened = outcome.get("window_opened_s")
    # The runner opens the window `measure_after_s` after the first user; the load lasts the plan.
    first_user_s = 0.0 if opened is None else float(opened) - plan.measure_after_s(loadtest.warmup_fraction)
    rows = list(csv.DictReader(samples_csv.read_text().splitlines())) if samples_csv.exists() else []
    cpu = cpu_window(
        rows,
        # A run that never opened the window (it ended first) has no steady state: its whole run counts.
        window_opened_s=0.0 if opened is None else float(opened),
        load_ended_s=first_user_s + plan.planned_duration_s if opened is not None else math.inf,
        service_processes=int(outcome.get("service_processes") or 0),
        cores=os.cpu_count() or 1,  # the analysis runs where the run ran (see stress.measure_stress)
    )

    def attribute(scope: str, metrics: EndpointMetrics) -> GapAttribution | None:
        return attribute_gap(
            scope,
            metrics.p95_ms,
            metrics.server_p95_ms,
            cpu,
            cpu_saturation_percent=loadtest.cpu_saturation_percent,
            host_saturation_percent=loadtest.host_saturation_percent,
        )

    # The p95s the target checks judge: the steady state's, as the CPU window is.
    judged = run.judged_figures
    endpoints = [
        attribute(endpoint_name(endpoint), endpoint)
        for endpoint in judged.endpoints
        if endpoint.requests >= min_requests
    ]
    return GapReport(
        aggregate=attribute(AGGREGATE, judged.aggregate),
        endpoints=tuple(found for found in endpoints if found is not None),
        cpu=cpu,
    )


def _cpu_words(cpu: CpuWindow) -> str:
    if cpu.samples == 0:
        return "no samples"
    parts = [
        f"busiest locust process {cpu.generator.describe() if cpu.generator else '—'} of one core",
        f"machine {cpu.host.describe() if cpu.host else '—'} of all cores",
    ]
    if cpu.service is not None:
        parts.append(
            f"service {cpu.service.describe()} of one core ({cpu.service_cores} core"
            f"{'s' if cpu.service_cores != 1 else ''} usable)"
        )
    else:
        parts.append("service not sampled (not on this machine)")
    return f"{', '.join(parts)}; {cpu.samples} s sampled"
