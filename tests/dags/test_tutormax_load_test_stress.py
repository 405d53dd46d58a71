"""End to end: the stress profile with dag.test() against the reference service, kept short (three
steps of 10 users), on real PostgreSQL, Redis and the SMTP sink.

Noise on a shared 2-core machine moves every latency, so these tests assert what must hold whatever
the knee turns out to be: the steps the schedule planned, the knee as the last step before the first
failing one, the figures stored and shown, and a machine saturated on purpose named as the limit.
"""

from __future__ import annotations

import csv
import html
import json
import os
import statistics
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_tutormax_load_test import DAG_ID, artifacts, runs, service  # noqa: F401  (a fixture)

from support import read_emails, task_states
from tutormax_ops.core.config import load_settings
from tutormax_ops.loadtest.stress import SETTLE_S

STEP_USERS, STEP_SECONDS = 10, 25  # 15 settled rows a step: a few skipped seconds cannot drop one
STRESS = {"profile": "stress", "users": 3 * STEP_USERS, "notify": "always"}
LIMITS = ("this machine", "the load generator", "the service", "the profile's top step")


@pytest.fixture
def short_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    """The shipped profile's steps (100 users every 30 s up to 1,000) scaled down to three short ones."""
    monkeypatch.setenv("TUTORMAX_OPS__LOADTEST__PROFILES__STRESS__STEP_USERS", str(STEP_USERS))
    monkeypatch.setenv("TUTORMAX_OPS__LOADTEST__PROFILES__STRESS__STEP_SECONDS", str(STEP_SECONDS))


@pytest.fixture
def cpu_burner() -> Iterator[None]:
    """Two busy-looping processes per core, beside the run: the machine has no core to spare."""
    burners = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2 * (os.cpu_count() or 1))
    ]
    try:
        yield
    finally:
        for burner in burners:
            burner.kill()
            burner.wait(10)


def test_a_stress_run_names_its_knee_in_the_report_the_email_and_the_history(
    service: str,  # noqa: F811  (the fixture imported above)
    short_steps,
    run_dag,
    maildir: Path,
) -> None:
    before = len(read_emails(maildir))
    dag_run = run_dag(DAG_ID, run_conf=STRESS)
    states = task_states(dag_run)
    assert (
        states["run"] == ["success"] and states["analyze"] == ["success"] and states["notify"] == ["success"]
    )
    run, endpoints = runs(service, dag_run.run_id)
    assert run is not None and run["profile"] == "stress"
    # A stress run is judged on its steps, never invalid for a busy machine (it names the machine
    # as its limit instead): valid it must be.
    assert run["valid"], run["invalid_reason"]
    folder = artifacts(run)
    summary = json.loads((folder / "summary.json").read_text())
    targets = load_settings().targets_for("stress")

    # The steps the schedule planned, each from its settled part; no phantom ramp-down step.
    steps = summary["steps"]
    assert [step["users"] for step in steps] == [10, 20, 30]
    for step in steps:
        assert step["rows"] >= 5 and step["requests"] > 0 and step["pooled_requests"] > 0
        assert step["p95_min_ms"] <= step["p95_ms"] <= step["p95_max_ms"]
        assert step["meets_targets"] == (
            step["p95_ms"] < targets.p95_api_ms and (step["error_rate"] or 0) < targets.error_rate_percent
        )
    # Each step's p95 is the median of the history rows inside its settled part, recomputed here.
    rows = list(csv.DictReader((folder / "locust_stats_history.csv").read_text().splitlines()))
    for step in steps:
        inside = [
            float(row["95%"])
            for row in rows
            if row["Name"] == "Aggregated"
            and step["start"] <= int(row["Timestamp"]) < step["start"] - SETTLE_S + STEP_SECONDS
            and row["95%"] not in ("", "N/A")
        ]
        assert statistics.median(inside) == step["p95_ms"]

    # The knee: the last step before the first failing one, or none when the first step failed.
    passed = [step["meets_targets"] for step in steps]
    first_failure = passed.index(False) if False in passed else len(steps)
    knee = summary["knee"]
    if first_failure == 0:
        assert knee is None
    else:
        assert knee["step"] == steps[first_failure - 1]
        assert knee["next_step"] == (steps[first_failure] if first_failure < len(steps) else None)
        assert run["knee_users"] == knee["step"]["users"] and run["knee_rps"] == knee["step"]["rps"]
        assert run["knee_p95_ms"] == knee["step"]["p95_ms"]
    # A stress run stores its knee, not whole-run figures, and no endpoint rows.
    assert run["p95_ms"] is None and run["rps"] is None and endpoints == []
    assert summary["limits"]["limited_by"] in LIMITS and run["limited_by"] == summary["limits"]["limited_by"]
    # No step failed: the profile ran out before the service, whatever the machine did.
    if knee is not None and knee["next_step"] is None:
        assert summary["limits"]["limited_by"] == "the profile's top step"

    # The report: the chart (req/s and p95 against users) and the steps table, the knee with its margin.
    report = html.unescape((folder / "report.html").read_text())  # the knee names "the profile's" step
    assert '<img src="data:image/png;base64,' in report and 'alt="req/s and p95 against users"' in report
    assert (folder / "stress.png").read_bytes().startswith(b"\x89PNG")
    assert "Steps follow the shape" in report and "steady state (all users spawned)" not in report
    if knee is not None:
        assert knee["described"] in report
    assert "The load came from 1 process on 1 host" in report  # who generated it
    # The email carries both, and its subject names the knee.
    [email] = [m for m in read_emails(maildir)[before:] if "load test stress" in m["subject"]]
    limited_by = summary["limits"]["limited_by"]
    if knee is None:
        named = f"no knee: the first step already missed the targets (limited by {limited_by})"
    else:
        at_least = "≥ " if knee["next_step"] is None or limited_by == "this machine" else ""
        named = f"knee {at_least}{knee['step']['rps']:.0f} req/s at {knee['step']['users']} users"
        named += f" (limited by {limited_by})"
    assert named in email["subject"], email["subject"]
    body = next(part.get_content() for part in email.walk() if part.get_content_type() == "text/html")
    assert 'src="cid:stress.png"' in body and "Rows over target" in body
    assert "stress.png" in {part.get_filename() for part in email.walk() if part.get_filename()}
    # The machine was sampled beside the run: all cores with steal, and the local service.
    roles = {row["role"] for row in csv.DictReader((folder / "cpu_samples.csv").read_text().splitlines())}
    assert {"host", "host-steal", "service", "locust"} <= roles


def test_a_saturated_machine_marks_the_stress_run_limited_by_this_machine(
    service: str,  # noqa: F811  (the fixture imported above)
    short_steps,
    run_dag,
    cpu_burner,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TUTORMAX_OPS__LOADTEST__PROFILES__STRESS__STEP_SECONDS", "15")  # burn briefly
    dag_run = run_dag(DAG_ID, run_conf={**STRESS, "users": 2 * STEP_USERS, "notify": "never"})
    assert task_states(dag_run)["analyze"] == ["success"]
    run, _ = runs(service, dag_run.run_id)
    assert run is not None
    summary = json.loads((artifacts(run) / "summary.json").read_text())
    limits = summary["limits"]
    assert limits["host_peak_pct"] > 95
    report = html.unescape((artifacts(run) / "report.html").read_text())
    if all(step["meets_targets"] for step in summary["steps"]):
        # Nothing failed even so: the profile ran out first, and the note says the machine was full.
        assert run["limited_by"] == limits["limited_by"] == "the profile's top step"
        assert "(with more generator hosts: this machine was already saturated at times)" in report
        return
    assert run["limited_by"] == limits["limited_by"] == "this machine"
    assert (
        "Limited by this machine: the knee measures the shared host, not the service, and is a lower bound"
        in report
    )
    if run["valid"] and summary["knee"] is not None:
        assert "knee ≥ " in summary["headline"] and "(limited by this machine)" in summary["headline"]
