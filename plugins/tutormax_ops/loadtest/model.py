"""The load test's shared types: what the steps hand each other (the plan, the stress steps and
their knee, the machine's limits, the target checks and the whole analysis). Every step imports
its types from here, so no step imports another for a type."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from tutormax_ops.core.paths import LOCUST_DIR

if TYPE_CHECKING:
    from tutormax_ops.collectors.locust import LocustRun
    from tutormax_ops.loadtest.regression import Finding, SeriesVerdict

Verdict = Literal["pass", "fail", "regression", "invalid"]
LIMITED_BY_MACHINE = "this machine"
LIMITED_BY_PROFILE = "the profile's top step"  # every step met the targets: the knee is beyond it


def whole_ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f}"


@dataclass(frozen=True)
class RunPlan:
    profile: str
    host: str  # base URL without a trailing slash, e.g. http://127.0.0.1:8000
    users: int
    spawn_rate: float
    run_time_s: int
    processes: int  # 0: one locust process; N: a master and N worker processes
    notify: str
    trigger: Literal["schedule", "asset", "manual"]
    step_users: int | None = None
    step_seconds: int | None = None
    locustfile: str = str(LOCUST_DIR / "tutormax_locustfile.py")
    user_classes: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    sizing: str = ""  # how the run time was sized from recent runs (loadtest/sizing.py), if it was
    unjudged: tuple[str, ...] = ()  # endpoints the maximum run time leaves under the requests a p95 needs

    @property
    def stress(self) -> bool:
        return self.step_users is not None and self.step_seconds is not None

    @property
    def planned_duration_s(self) -> float:
        """The shape decides a stress run's length: whole steps up to `users`."""
        if self.step_users is not None and self.step_seconds is not None:
            return float(math.ceil(self.users / self.step_users) * self.step_seconds)
        return float(self.run_time_s)

    def measure_after_s(self, warmup_fraction: float) -> float:
        """When the server-side window opens, counted from the first user: all users spawned, plus a
        warm-up, but never later than half-way."""
        spawn_s = 0.0 if self.stress else self.users / self.spawn_rate
        return min(spawn_s + warmup_fraction * self.planned_duration_s, self.planned_duration_s / 2)


@dataclass(frozen=True)
class LoadStep:
    users: int
    start: float  # epoch seconds of the step's settled part
    seconds: float
    requests: int
    rps: float
    error_rate: float | None
    p95_ms: float | None  # median of the settled rows' p95s
    p95_min_ms: float | None
    p95_max_ms: float | None
    rows: int
    failing_rows: int  # settled rows whose own p95 missed the target
    meets_targets: bool
    pooled_p95_ms: float | None = None  # from the step's own settled requests, where recorded
    pooled_low_ms: float | None = None
    pooled_high_ms: float | None = None
    pooled_requests: int = 0


@dataclass(frozen=True)
class Knee:
    step: LoadStep
    next_step: LoadStep | None  # the first failing step; None: no step failed
    confirmed: bool
    confirmation: str

    def describe(self) -> str:
        """'300 users, 292 req/s, p95 110 ms; the next step failed at p95 180–250 ms'."""
        knee = self.step
        text = f"{knee.users} users, {knee.rps:.0f} req/s, p95 {whole_ms(knee.p95_ms)} ms"
        failed = self.next_step
        if failed is None:
            return (
                f"{text}; no step failed: the profile's top step was reached, so the knee is at least "
                f"this; extend users to {extended_users(knee.users)} to find it"
            )
        if failed.p95_ms is not None and knee.p95_ms is not None and failed.p95_ms > knee.p95_ms:
            why = f"p95 {whole_ms(failed.p95_min_ms)}–{whole_ms(failed.p95_max_ms)} ms"
        else:
            why = f"{failed.error_rate or 0:.1f}% errors"
        return f"{text}; the next step ({failed.users} users) failed at {why}"


def extended_users(top_users: int) -> int:
    """How far to extend a stress profile none of whose steps failed: twice its top step, the
    smallest extension that can tell a knee within reach from one far beyond."""
    return 2 * top_users


@dataclass(frozen=True)
class Generators:
    """Who generated the load: Locust's processes that ran users, and the hosts they ran on."""

    processes: int  # one locust, or the workers that joined the master
    hosts: tuple[str, ...]  # their host names, this machine's included when it ran users
    here: bool  # whether this machine (where the runner sampled the CPU) ran users

    def describe(self) -> str:
        """'2 processes on 1 host (ci-7)', '8 processes on 3 hosts (a, b, c), none on this machine'."""
        plural = "es" if self.processes != 1 else ""
        text = (
            f"{self.processes} process{plural} on {len(self.hosts)} host{'s' if len(self.hosts) != 1 else ''}"
        )
        text += f" ({', '.join(self.hosts)})" if self.hosts else ""
        return text if self.here else f"{text}, none on this machine"


@dataclass(frozen=True)
class Limits:
    """The machine while the step that decided the knee ran: the first failing one, else the last."""

    limited_by: str  # LIMITED_BY_MACHINE, LIMITED_BY_PROFILE, "the load generator" or "the service"
    at_users: int  # the step judged: the first failing one, else the last
    failed: bool  # whether that step failed
    host_busy_pct: float | None  # median over that step's settled part
    host_peak_pct: float | None  # over the whole run
    saturated_fraction: float | None
    steal_peak_pct: float | None
    generator_pct: float | None  # the load generator's processes together, % of one core
    service_pct: float | None
    cores: int
    generators: Generators
    note: str


@dataclass(frozen=True)
class TargetCheck:
    scope: str  # an endpoint, or "all endpoints"
    metric: str
    value: float | None
    target: float
    comparison: Literal["<", ">", "≥"]
    unit: str
    status: Literal["pass", "fail", "n/a"]
    note: str = ""


Confidence = Literal["high", "medium", "low"]


@dataclass(frozen=True)
class Suspect:
    """One candidate cause of a finding (`loadtest.explain`), with the figures it rests on."""

    kind: str  # one of explain.KINDS
    summary: str  # one line, figures included: what the email's "Likely cause" says
    evidence: tuple[str, ...]  # the figures, before -> after, one per line
    confidence: Confidence
    explains_ms: float | None = None  # the estimated milliseconds per request it accounts for
    scopes: tuple[str, ...] = ()  # the endpoints it concerns; empty: every endpoint
    statement_id: str | None = None  # a statement suspect's normalised id (loadtest.evidence)


def knee_line(knee: Knee | None, limits: Limits | None) -> str:
    """For the email's subject: the knee, as a lower bound when nothing failed or the machine set
    the limit, and who set it."""
    limit = f" (limited by {limits.limited_by})" if limits else ""
    if knee is None:
        return f"no knee: the first step already missed the targets{limit}"
    lower = knee.next_step is None or (limits is not None and limits.limited_by == LIMITED_BY_MACHINE)
    return f"knee {'≥ ' if lower else ''}{knee.step.rps:.0f} req/s at {knee.step.users} users{limit}"


@dataclass(frozen=True)
class Analysis:
    """Everything the report, the email and the history rows are made of."""

    plan: RunPlan
    run_id: str
    started_at: datetime
    valid: bool
    invalid_reasons: tuple[str, ...]
    run: LocustRun | None
    checks: tuple[TargetCheck, ...]
    steps: tuple[LoadStep, ...]
    knee: Knee | None
    regression: tuple[SeriesVerdict, ...]
    history: tuple[dict[str, Any], ...]  # earlier runs, oldest first, with their endpoint figures
    server: dict[str, Any]
    outcome: dict[str, Any]
    min_requests: int = 1  # the fewest requests whose p95 has an upper bound (collectors.sampling)
    accepted: tuple[str, ...] = ()  # flagged runs a person accepted as the new normal
    limits: Limits | None = None  # a stress run: who set the limit
    evidence: dict[str, Any] | None = None  # this run's evidence (loadtest.evidence), stored with it
    suspects: tuple[Suspect, ...] = ()  # ranked against the baseline runs' evidence (loadtest.explain)
    explain_note: str = ""  # why there are no suspects to rank, when there is a reason

    @property
    def recovered_from(self) -> dict[str, Any] | None:
        """The regression this run ends: the latest earlier run, if it was flagged and not accepted,
        when this run is valid and raises no alarm."""
        last = self.history[-1] if self.history else None
        if not self.valid or self.alarms or last is None:
            return None
        flagged = last.get("regression_verdict") == "regression" and last["run_id"] not in self.accepted
        return last if flagged else None

    @property
    def targets_verdict(self) -> Literal["pass", "fail"]:
        return "fail" if any(check.status == "fail" for check in self.checks) else "pass"

    @property
    def findings(self) -> list[Finding]:
        """Largest move first, counted in steps of each metric's `min_abs_change`, so the email's subject
        names what moved most. Relative change would rank a query p95 going from 1.6 to 3.9 ms
        (+149%) above an endpoint slowed by 150 ms from a 100 ms baseline (+150% or less)."""
        from tutormax_ops.loadtest.regression import METRICS

        found = [finding for verdict in self.regression for finding in verdict.findings]
        return sorted(
            found, key=lambda finding: -abs(finding.change) / METRICS[finding.metric].min_abs_change
        )

    @property
    def alarms(self) -> list[Finding]:
        """The findings that fail the run: all of them, once `min_history` runs allowed a verdict
        (the rule's limits widen with a short history instead; see loadtest/regression.py)."""
        return self.findings

    @property
    def regression_verdict(self) -> Literal["regression", "ok", "insufficient history", "not judged"]:
        if not self.valid or not self.regression:  # e.g. a stress run limited by this machine
            return "not judged"
        if self.alarms:
            return "regression"
        if any(verdict.status == "insufficient history" for verdict in self.regression):
            return "insufficient history"
        return "ok"

    @property
    def verdict(self) -> Verdict:
        if not self.valid:
            return "invalid"
        if self.targets_verdict == "fail":
            return "fail"
        return "regression" if self.alarms else "pass"

    def headline(self) -> str:
        """One line for the email subject: the verdict and its first reason."""
        problems = [
            *(f"invalid: {reason}" for reason in self.invalid_reasons),
            *(
                f"{check.scope} {check.metric} {check.value:.1f} {check.unit} misses {check.comparison} {check.target:g}"
                for check in self.checks
                if check.status == "fail" and check.value is not None
            ),
            *(finding.describe() for finding in self.alarms),
        ]
        if self.recovered_from is not None:
            problems.append(f"recovered from the regression of run {self.recovered_from['run_id']}")
        if self.plan.stress and self.valid:
            # The stress run's answer is its knee: the subject names it, and who set the limit.
            problems.insert(0, knee_line(self.knee, self.limits))
        label = {"pass": "PASS", "fail": "TARGET BREACH", "regression": "REGRESSION", "invalid": "INVALID"}
        words = [label[self.verdict]]
        if self.valid and self.alarms and self.verdict == "fail":
            words.append("+ REGRESSION")
        return " ".join(words) + (f": {problems[0]}" if problems else "")
