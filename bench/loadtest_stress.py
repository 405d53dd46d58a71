"""(f) of `bench/loadtest.py`: the stress profile against the reference service, judged as the DAG
judges it, and its knee recomputed straight from Locust's history rows."""

from __future__ import annotations

import csv
import json
import os
import shutil
import statistics
from dataclasses import asdict
from pathlib import Path

from tutormax_ops.core.config import Settings
from tutormax_ops.core.paths import STATE_DIR
from tutormax_ops.core.settings_base import Targets
from tutormax_ops.devstack import stack as devstack


def bench_stress(settings: Settings, max_users: int | None) -> dict[str, object]:
    import psycopg

    from tutormax_ops.core import reports
    from tutormax_ops.loadtest.machine import HOST_ROLE
    from tutormax_ops.loadtest.model import RunPlan
    from tutormax_ops.loadtest.runner import run_locust
    from tutormax_ops.loadtest.stress import measure_stress

    profile = settings.profile("stress")
    targets = settings.targets_for("stress")
    root = STATE_DIR / "bench" / f"stress-{os.getpid()}"
    with devstack.running_stack(root / "stack") as stack:
        db_url = stack.endpoints.db_url
        devstack.migrate_service_schema(db_url)
        devstack.load_service_data(db_url, days=2)
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        host = stack.start_service()
        plan = RunPlan("stress", host, max_users or profile.users, profile.spawn_rate, profile.run_time_s, 0,
                       "never", "manual", step_users=profile.step_users, step_seconds=profile.step_seconds)  # fmt: skip
        folder = root / "run"
        folder.mkdir(parents=True, exist_ok=True)
        outcome = run_locust(plan, settings.loadtest, folder)
    samples = folder / "cpu_samples.csv"
    samples.write_text(reports.to_csv([asdict(sample) for sample in outcome.cpu_samples]))
    steps, knee, limits = measure_stress(
        plan, folder, samples, {"started_at": outcome.started_at.isoformat()}, settings, targets
    )
    recomputed = knee_from_rows(folder, plan.step_users or 1, plan.step_seconds or 1, plan.users, targets)
    reported = knee.step.users if knee else None
    host_peak = max((s.cpu_percent for s in outcome.cpu_samples if s.role == HOST_ROLE), default=None)
    shutil.rmtree(root, ignore_errors=True)
    for step in steps:
        print(
            f"(f) {step.users:>5} users: {step.rps:6.1f} req/s, p95 {step.p95_ms} ms (rows {step.p95_min_ms}–"
            f"{step.p95_max_ms}, {step.failing_rows}/{step.rows} over), errors {step.error_rate or 0:.2f}%, "
            f"{'pass' if step.meets_targets else 'FAIL'}"
        )
    print(
        f"(f) stress up to {plan.users} users: knee {knee.describe() if knee else 'none'}"
        f"{'' if knee is None else ' (' + knee.confirmation + ')'}; "
        f"{limits.note if limits else 'no CPU samples'}; recomputed from the rows: {recomputed} users"
    )
    return {
        "knee_rps": round(knee.step.rps, 1) if knee else None,
        "knee_users": reported,
        "knee_p95_ms": knee.step.p95_ms if knee else None,
        "knee_confirmed": knee.confirmed if knee else None,
        "limited_by": limits.limited_by if limits else None,
        "host_cpu_peak_pct": host_peak,
        "knee_check_ok": recomputed == reported,
        "stress_steps": len(steps),
    }


def knee_from_rows(
    folder: Path, step_users: int, step_seconds: float, max_users: int, targets: Targets
) -> int | None:
    """The knee's user count straight from `locust_stats_history.csv`, apart from
    `tutormax_ops.loadtest.stress`: the shape's schedule from its own start record, each step's
    rows from 10 s in to its end, the median of their p95s against the target, and the last step
    before the first failing one."""

    starts = [json.loads(path.read_text()).get("shape_started_at") for path in folder.glob("seconds-*.json")]
    start = min(value for value in starts if value is not None)
    with (folder / "locust_stats_history.csv").open(newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["Name"] == "Aggregated" and not row["Type"]]
    knee = None
    for index in range(-(-max_users // step_users)):
        begin, end = start + index * step_seconds + 10, start + (index + 1) * step_seconds
        settled = [row for row in rows if begin <= int(row["Timestamp"]) < end]
        if len(settled) < 3:
            break
        p95 = statistics.median(float(row["95%"]) for row in settled if row["95%"] not in ("", "N/A"))
        requests = int(settled[-1]["Total Request Count"]) - int(settled[0]["Total Request Count"])
        failures = int(settled[-1]["Total Failure Count"]) - int(settled[0]["Total Failure Count"])
        errors = 100 * failures / requests if requests else 0.0
        if p95 >= targets.p95_api_ms or errors >= targets.error_rate_percent:
            break
        knee = min((index + 1) * step_users, max_users)
    return knee
