"""Phase (e) of bench/loadtest.py: real smoke runs against an unchanged reference service, a real
step on the tutor routes, recovery runs, judged as the DAG judges them; and the per-run false-alarm
share simulated from the real runs' spreads. Imported by bench/loadtest.py, not run on its own."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import statistics
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np

from tutormax_ops.core.paths import STATE_DIR
from tutormax_ops.devstack import stack as devstack
from tutormax_ops.loadtest.regression import AGGREGATE, MAD_TO_SIGMA, analyze_history

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def validity_as_the_dag_judges(
    settings: Any, run: Any, outcome: Any, run_time: float, *, host_check: bool
) -> Any:
    """`validate_run` with the DAG's settings and the runner's CPU samples. (e) judges the detector
    on whatever machine runs it, so it leaves the host check out, as the detector's tests do."""
    from dataclasses import asdict

    from tutormax_ops.loadtest.machine import cpu_by_role
    from tutormax_ops.loadtest.validity import validate_run

    split = cpu_by_role(asdict(sample) for sample in outcome.cpu_samples)
    loadtest = settings.loadtest
    return validate_run(
        run,
        planned_duration_s=run_time,
        cpu_samples=split.generator,
        cpu_saturation_percent=loadtest.cpu_saturation_percent,
        max_saturated_fraction=loadtest.max_saturated_fraction,
        host_cpu_samples=split.host if host_check else (),
        host_saturation_percent=loadtest.host_saturation_percent,
        stall_min_s=loadtest.stall_min_s,
        stall_fraction=loadtest.stall_fraction,
    )


# --- (e) real runs against the unchanged service, a real step, and recovery ------------------------

TUTOR_ROUTES = ("/api/tutors/{tutor_id}/dashboard", "/api/tutors/{tutor_id}/feedback")
STEP_MS = 120


def bench_real_runs(settings: Any, unchanged: int, recovery: int = 2) -> dict[str, Any]:
    """Smoke runs (the profile's users, think time and run time: its request volume) judged as the
    DAG judges them, with the shipped settings: `unchanged` runs, one with +120 ms on the tutor
    routes, `recovery` runs. Also returns each series' run-to-run spread (relative MAD) and its
    median judged requests per run over the unchanged runs, for the simulation in (b')."""
    from tutormax_ops.collectors.locust import parse_run
    from tutormax_ops.collectors.sampling import min_requests
    from tutormax_ops.loadtest.model import RunPlan
    from tutormax_ops.loadtest.runner import run_locust
    from tutormax_ops.loadtest.series import build_series, current_values
    from tutormax_ops.loadtest.sizing import judged_rates, size_plan

    params = settings.loadtest.regression
    needed = min_requests(confidence=params.confidence)
    profile = settings.profile("smoke")
    root = STATE_DIR / "bench" / f"real-{os.getpid()}"
    history: list[dict[str, Any]] = []
    rates: list[dict[str, Any]] = []
    rows = []
    with devstack.running_stack(root / "stack") as stack:
        db_url = stack.endpoints.db_url
        devstack.migrate_service_schema(db_url)
        devstack.load_service_data(db_url, days=2)
        phases = ["unchanged"] * unchanged + ["step"] + ["recovery"] * recovery
        for index, phase in enumerate(phases):
            latency = ",".join(f"{route}={STEP_MS}" for route in TUTOR_ROUTES) if phase == "step" else ""
            port = devstack.free_port()
            service = devstack.start_reference_service(
                database_url=db_url,
                redis_url=stack.endpoints.redis_url,
                port=port,
                log_dir=root,
                extra_env={"TUTORMAX_SERVICE_INJECTED_LATENCY_MS": latency},
            )
            folder = root / f"run-{index}"
            folder.mkdir(parents=True, exist_ok=True)
            host = f"http://{devstack.LOOPBACK}:{port}"
            plan = RunPlan(
                "smoke", host, profile.users, profile.spawn_rate, profile.run_time_s, 0, "never", "manual"
            )
            try:
                outcome = run_locust(plan, settings.loadtest, folder, log=lambda _: None)
            finally:
                service.stop()
            run = parse_run(
                csv_prefix=folder / "locust",
                json_path=folder / "locust.json",
                html_path=folder / "locust.html",
                log_text=(folder / "locust.log").read_text(errors="replace"),
                confidence=params.confidence,
                steady_after_s=plan.measure_after_s(settings.loadtest.warmup_fraction),
            )
            judged = run.judged_figures  # the steady state, as the DAG judges and stores it
            validity = validity_as_the_dag_judges(
                settings, run, outcome, profile.run_time_s, host_check=False
            )
            run_id, started = f"{phase}-{index}", T0 + timedelta(days=index)
            current = current_values(run, {"cache_hit_rate": None, "query_p95_ms": None}, needed)
            verdicts = (
                analyze_history(build_series(history, current, run_id, started), params)
                if validity.valid
                else []
            )
            findings = [finding for verdict in verdicts for finding in verdict.findings]
            steps = [
                v.min_step for v in verdicts if v.metric == "p95_ms" and v.scope != AGGREGATE and v.min_step
            ]
            rows.append({"phase": phase, "valid": validity.valid, "reasons": validity.reasons,
                         "flagged": sorted({f.scope for f in findings}), "min_steps": steps})  # fmt: skip
            print(f"    {run_id}: valid {validity.valid} {'; '.join(validity.reasons)} "
                  f"flagged {sorted({f.scope for f in findings}) or 'nothing'}", flush=True)  # fmt: skip
            if phase == "step":  # what the detector saw of each slowed endpoint, flagged or not
                counts = {f"{e.method} {e.name}": e.requests for e in judged.endpoints}
                for v in verdicts:
                    if v.metric == "p95_ms" and v.scope.removeprefix("GET ") in TUTOR_ROUTES:
                        print(f"      {v.scope}: {counts.get(v.scope)} judged requests, {v.status}, "
                              f"{v.baseline} → {v.current} ms over {v.history_runs} runs", flush=True)  # fmt: skip
                missing = [r for r in TUTOR_ROUTES if not any(v.scope == f"GET {r}" for v in verdicts)]
                if missing:
                    print(f"      not judged (under {needed} requests): "
                          f"{ {r: counts.get(f'GET {r}') for r in missing} }", flush=True)  # fmt: skip
            if validity.valid and phase == "unchanged":  # each endpoint's judged requests, for sizing
                rates.append({"duration_s": run.duration_s, "judged_from_s": judged.excluded_s,
                              "endpoints": {f"{e.method} {e.name}": {"requests": e.requests} for e in judged.endpoints}})  # fmt: skip
            if validity.valid:
                history.append({
                    "run_id": run_id, "started_at": started, "p95_ms": judged.aggregate.p95_ms,
                    "error_rate": judged.aggregate.error_rate_percent, "rps": judged.aggregate.steady_rps,
                    "regression_verdict": "regression" if findings else "ok",
                    "endpoints": {f"{e.method} {e.name}": {"p95_ms": e.p95_ms, "error_rate": e.error_rate_percent}
                                  for e in judged.endpoints if e.requests >= needed},
                    "requests": {AGGREGATE: judged.aggregate.requests}
                                | {f"{e.method} {e.name}": e.requests for e in judged.endpoints if e.requests >= needed},
                })  # fmt: skip
    shutil.rmtree(root, ignore_errors=True)
    slowed = {f"GET {route}" for route in TUTOR_ROUTES}
    step = next(row for row in rows if row["phase"] == "step")
    last_steps = next((row["min_steps"] for row in reversed(rows) if row["min_steps"]), [])
    noise = series_noise([run for run in history if run["run_id"].startswith("unchanged")])
    smoke_plan = RunPlan(
        "smoke", "", profile.users, profile.spawn_rate, profile.run_time_s, 0, "never", "schedule"
    )
    sized = size_plan(smoke_plan, judged_rates(rates), needed, settings.loadtest.warmup_fraction,
                      profile.max_run_time_s or profile.run_time_s)  # fmt: skip
    print(f"    sizing from the unchanged runs: {sized.sizing}")
    result = {
        "real_runs": len(rows),
        "unjudged_endpoints": len(sized.unjudged),
        "sized_run_time_s": sized.run_time_s,
        "real_invalid": sum(not row["valid"] for row in rows),
        "real_false_alarms": sum(len(row["flagged"]) for row in rows if row["phase"] != "step"),
        "real_detected": f"{len(slowed & set(step['flagged']))}/{len(slowed)}",
        "real_wrongly_flagged": len(set(step["flagged"]) - slowed - {AGGREGATE}),
        "min_detectable_step_pct": round(100 * statistics.median(last_steps), 1) if last_steps else None,
        "noise": noise,
    }
    print(f"(e) real runs: {json.dumps({k: v for k, v in result.items() if k != 'noise'})}")
    return result


@dataclass(frozen=True)
class SeriesNoise:
    """One judged series as the unchanged real runs made it."""

    name: str
    level_ms: float  # its median p95
    spread: float  # run-to-run: `relative_spread`
    requests: int  # its median number of judged requests


def series_noise(history: list[dict[str, Any]]) -> list[SeriesNoise]:
    """Each series seen in at least 5 unchanged runs, with its level, spread and request count."""
    series: dict[str, list[tuple[float, int]]] = {
        AGGREGATE: [(run["p95_ms"], run["requests"][AGGREGATE]) for run in history]
    }
    for run in history:
        for name, figures in run["endpoints"].items():
            series.setdefault(name, []).append((figures["p95_ms"], run["requests"][name]))
    noise = []
    for name, pairs in series.items():
        values = [value for value, _ in pairs]
        median = statistics.median(values) if len(values) >= 5 else 0
        if median > 0:
            requests = round(statistics.median(count for _, count in pairs))
            noise.append(SeriesNoise(name, median, relative_spread(values), requests))
    return noise


RESPONSE_SIGMA = 0.6  # lognormal σ of one run's response times: p95/p50 ≈ 2.7, as the smoke runs show
DRIFT_GRID = np.linspace(0, 0.6, 31)
Z95 = NormalDist().inv_cdf(0.95)  # the 95th percentile of a lognormal sits Z95 σ above its log-mean


def _response_times(series: SeriesNoise, drift: float, rng: np.random.Generator) -> np.ndarray:
    """One run's response times in whole ms (Locust's resolution), its level moved by `drift`."""
    mu = np.log(series.level_ms) - Z95 * RESPONSE_SIGMA + rng.normal(0, drift)
    return np.rint(rng.lognormal(mu, RESPONSE_SIGMA, series.requests)).astype(int)


def relative_spread(values: list[float]) -> float:
    """Run-to-run spread relative to the level: σ estimated from the MAD, over the median; 0 at a
    median of 0."""
    median = float(np.median(values))
    return MAD_TO_SIGMA * float(np.median(np.abs(np.array(values) - median))) / median if median else 0.0


def calibrated_drift(series: SeriesNoise, rng: np.random.Generator, runs: int = 300) -> float:
    """The run-to-run drift of the series' true level: the one whose simulated runs show the real
    spread. The real spread also holds the p95's sampling noise and Locust's whole-ms rounding (a
    3 ms p95 moves in 33% steps), which the simulation adds itself; using the real spread as the
    drift would count them twice."""

    def spread(drift: float) -> float:
        return relative_spread(
            [
                np.quantile(_response_times(series, drift, rng), 0.95, method="inverted_cdf")
                for _ in range(runs)
            ]
        )

    return float(min(DRIFT_GRID, key=lambda drift: abs(spread(drift) - series.spread)))


def bench_real(settings: Any, trials: int, noise_file: Path | None = None) -> dict[str, Any]:
    """(e), then (g) on its runs' series: the real runs' keys and the rule's simulated figures.
    With `noise_file`, (g) alone, on the series recorded there (e's `noise-*.json`, or another set)."""
    from loadtest_rule import bench_rule

    if noise_file is None:
        real = bench_real_runs(settings, unchanged=8)
        noise = real.pop("noise")
        record = STATE_DIR / "bench" / f"noise-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
        record.parent.mkdir(parents=True, exist_ok=True)
        record.write_text(json.dumps({"about": "bench/loadtest.py (e): the unchanged real runs",
                                        "series": [dataclasses.asdict(series) for series in noise]}, indent=1))  # fmt: skip
        print(f"(g) the real series, recorded in {record} (replay with --noise):")
    else:
        real = {}
        replayed = json.loads(noise_file.read_text())
        noise = [SeriesNoise(**series) for series in replayed["series"]]
        print(f"(g) the series of {noise_file}: {replayed['about']}")
    for series in noise:
        print(f"    {series.name}: p95 {series.level_ms:g} ms, run-to-run spread {series.spread:.1%}, "
              f"{series.requests} requests")  # fmt: skip
    return {**real, **bench_rule(noise, settings.loadtest.regression, trials)}
