"""The load-test module's pieces: plans, the guard's static refusals, target checks, stress steps,
locust's command lines, and stopping a running locust's whole process group."""

from __future__ import annotations

import csv
import os
from dataclasses import replace
from pathlib import Path

import psutil
import pytest

from tutormax_ops.collectors.locust import EndpointMetrics
from tutormax_ops.core.config import Targets, load_settings
from tutormax_ops.loadtest import (
    LOCUSTFILE,
    STRESS_SHAPE,
    RunPlan,
    check_targets,
    knee,
    load_steps,
    locust_commands,
    resolve_plan,
    run_locust,
    should_notify,
    static_refusals,
)

SETTINGS = load_settings()
HOST = "http://127.0.0.1:8000"


def plan(**overrides) -> RunPlan:
    values = {
        "profile": "smoke",
        "host": HOST,
        "users": 20,
        "spawn_rate": 10.0,
        "run_time_s": 60,
        "processes": 0,
        "notify": "on_problem",
        "trigger": "manual",
    }
    return RunPlan(**{**values, **overrides})


def endpoint(name: str, *, requests: int = 100, failures: int = 0, p95: int | None = 40) -> EndpointMetrics:
    return EndpointMetrics(
        method="GET",
        name=name,
        requests=requests,
        failures=failures,
        error_rate_percent=100 * failures / requests,
        avg_ms=10.0,
        min_ms=1.0,
        p50_ms=10,
        p90_ms=30,
        p95_ms=p95,
        p99_ms=60,
        max_ms=90.0,
        steady_rps=250.0,
    )


# --- plans -------------------------------------------------------------------------------------


def test_params_override_the_profile_and_empty_ones_keep_it() -> None:
    chosen = resolve_plan(
        SETTINGS,
        {
            "profile": "baseline",
            "users": 50,
            "spawn_rate": None,
            "run_time": 30,
            "host": "",
            "notify": "never",
        },
        default_host="http://127.0.0.1:9000/",
        trigger="manual",
    )
    assert (chosen.profile, chosen.users, chosen.spawn_rate, chosen.run_time_s) == ("baseline", 50, 10.0, 30)
    assert chosen.host == "http://127.0.0.1:9000" and chosen.notify == "never" and not chosen.stress


def test_an_asset_triggered_run_is_the_plain_smoke_profile() -> None:
    chosen = resolve_plan(
        SETTINGS,
        {"profile": "stress", "users": 900, "host": "http://10.0.0.1", "notify": "on_problem"},
        default_host=HOST,
        trigger="asset",
    )
    smoke = SETTINGS.profile("smoke")
    assert (chosen.profile, chosen.users, chosen.run_time_s, chosen.host) == (
        "smoke",
        smoke.users,
        smoke.run_time_s,
        HOST,
    )
    assert chosen.trigger == "asset"


def test_a_stress_run_lasts_whole_steps_and_opens_its_window_early() -> None:
    stress = resolve_plan(SETTINGS, {"profile": "stress"}, default_host=HOST, trigger="schedule")
    assert stress.stress and stress.planned_duration_s == 10 * 30  # 1000 users in steps of 100
    assert stress.measure_after_s(0.25) == pytest.approx(75)
    assert plan(users=20, spawn_rate=10, run_time_s=60).measure_after_s(0.25) == pytest.approx(2 + 15)


# --- the guard ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("http://127.0.0.1:8000", True),
        ("https://LOCALHOST", True),
        ("http://[::1]:8000", True),
        ("http://127.0.0.2:8000", False),
        ("http://api.example.org", False),
        ("ftp://127.0.0.1", False),
    ],
)
def test_only_allowlisted_http_hosts_pass(host: str, allowed: bool) -> None:
    reasons = static_refusals(plan(host=host), SETTINGS.loadtest)
    assert (reasons == []) is allowed
    if not allowed:
        assert "not on loadtest.host_allowlist" in reasons[0]


def test_users_over_the_cap_are_refused_with_both_numbers() -> None:
    reasons = static_refusals(plan(users=SETTINGS.loadtest.max_users + 1), SETTINGS.loadtest)
    assert reasons == [f"{SETTINGS.loadtest.max_users + 1} users exceed the cap loadtest.max_users=2000"]


# --- verdict 1 ---------------------------------------------------------------------------------


def test_targets_are_checked_on_the_aggregate_and_on_busy_endpoints() -> None:
    slow = endpoint("/api/tutors/{tutor_id}/dashboard", p95=250)
    quiet = endpoint("/api/admin/overview", requests=5, p95=900)
    checks = check_targets(
        aggregate=endpoint("Aggregated", p95=120),
        endpoints=[slow, quiet, endpoint("/api/tutors", failures=3)],
        cache_hit_rate=85.0,
        query_p95_ms=None,
        targets=Targets(),
        min_endpoint_requests=20,
        unmeasured={"query_p95_ms": "pg_stat_statements is not installed"},
    )
    by_key = {(check.scope, check.metric): check for check in checks}
    assert by_key[("all endpoints", "p95_ms")].status == "pass"
    assert by_key[("all endpoints", "rps")].status == "pass"
    assert by_key[("all endpoints", "cache_hit_rate")].status == "pass"
    assert by_key[("all endpoints", "query_p95_ms")].status == "n/a"
    assert by_key[("all endpoints", "query_p95_ms")].note == "pg_stat_statements is not installed"
    assert by_key[("GET /api/tutors/{tutor_id}/dashboard", "p95_ms")].status == "fail"
    assert by_key[("GET /api/admin/overview", "p95_ms")].status == "n/a"  # 5 requests say nothing
    assert by_key[("GET /api/tutors", "error_rate")].status == "fail"  # 3 % ≥ 1 %


def test_the_boundaries_follow_the_seeds_wording() -> None:
    at_limits = check_targets(
        aggregate=replace(endpoint("Aggregated", p95=200), steady_rps=200.0),
        endpoints=[],
        cache_hit_rate=80.0,
        query_p95_ms=100.0,
        targets=Targets(),
        min_endpoint_requests=20,
    )
    statuses = {check.metric: check.status for check in at_limits}
    # "p95 under 200", "at least 200 req/s", "above 80 %", "under 100 ms"
    assert statuses == {
        "p95_ms": "fail",
        "rps": "pass",
        "error_rate": "pass",
        "cache_hit_rate": "fail",
        "query_p95_ms": "fail",
    }


def test_a_profile_without_a_throughput_target_does_not_judge_throughput() -> None:
    checks = check_targets(
        aggregate=replace(endpoint("Aggregated"), steady_rps=19.0),
        endpoints=[],
        cache_hit_rate=None,
        query_p95_ms=None,
        targets=SETTINGS.targets_for("smoke"),
        min_endpoint_requests=20,
    )
    assert next(check for check in checks if check.metric == "rps").status == "n/a"


def test_notify_param() -> None:
    assert should_notify("always", "pass") and not should_notify("never", "regression")
    assert should_notify("on_problem", "invalid") and not should_notify("on_problem", "pass")


# --- stress steps -------------------------------------------------------------------------------


def write_history(path: Path, steps: list[tuple[int, int, float, int]]) -> None:
    """(users, seconds, req/s, p95) per step, one aggregate row a second, as locust writes them."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Timestamp", "User Count", "Type", "Name", "Requests/s", "95%", "Total Request Count",
                         "Total Failure Count"])  # fmt: skip
        now, total = 1_700_000_000, 0
        for users, seconds, rps, p95 in steps:
            for _ in range(seconds):
                now, total = now + 1, total + int(rps)
                failures = total // 20 if p95 > 1000 else 0
                writer.writerow([now, users, "", "Aggregated", rps, p95, total, failures])


def test_the_knee_is_the_fastest_step_that_still_meets_the_targets(tmp_path: Path) -> None:
    history = tmp_path / "locust_stats_history.csv"
    write_history(history, [(100, 30, 95, 20), (200, 30, 190, 60), (300, 30, 240, 450), (400, 30, 230, 2000)])
    steps = load_steps(history, Targets())
    assert [(step.users, round(step.rps), step.meets_targets) for step in steps] == [
        (100, 95, True),
        (200, 190, True),
        (300, 240, False),
        (400, 230, False),
    ]
    assert steps[3].error_rate == pytest.approx(5, abs=0.5)
    chosen = knee(steps)
    assert chosen is not None and chosen.users == 200


# --- locust's command lines and process group ---------------------------------------------------


def test_one_process_runs_headless_with_every_output_and_no_exit_code_on_errors(tmp_path: Path) -> None:
    [(role, argv)] = locust_commands(plan(), SETTINGS.loadtest, tmp_path, master_port=5557)
    assert role == "locust"
    assert argv[argv.index("-f") + 1] == str(LOCUSTFILE)
    for flag in ("--headless", "--csv-full-history", "--only-summary"):
        assert flag in argv
    pairs = dict(zip(argv, argv[1:], strict=False))
    assert pairs["--exit-code-on-error"] == "0"
    assert pairs["--stop-timeout"] == str(SETTINGS.loadtest.stop_timeout_s)
    assert pairs["--csv"] == str(tmp_path / "locust") and pairs["--json-file"] == str(tmp_path / "locust")
    assert pairs["--html"] == str(tmp_path / "locust.html") and pairs["-t"] == "60s"


def test_distributed_mode_is_a_master_expecting_every_worker(tmp_path: Path) -> None:
    stress = plan(processes=2, step_users=100, step_seconds=30, users=1000)
    commands = dict(locust_commands(stress, SETTINGS.loadtest, tmp_path, master_port=5557))
    assert list(commands) == ["master", "worker-1", "worker-2"]
    master = dict(zip(commands["master"], commands["master"][1:], strict=False))
    assert master["--expect-workers"] == "2" and master["--master-bind-port"] == "5557"
    assert master["-f"] == f"{LOCUSTFILE},{STRESS_SHAPE}"
    worker = commands["worker-1"]
    assert "--worker" in worker and "--headless" not in worker and worker[-1] == "5557"


def test_an_interrupted_run_stops_the_whole_group_and_leaves_no_process(
    tutormax_api: str, tmp_path: Path
) -> None:
    """What an execution timeout does: an exception raised while locust runs (here from the window
    callback, as AirflowTaskTimeout would from its alarm) stops the group with SIGINT, so locust
    still writes its HTML report, and nothing of the group survives."""
    started: dict[str, int] = {}

    def interrupt() -> None:
        from tutormax_ops import loadtest

        started["pgid"] = loadtest._active_group.pgid
        raise TimeoutError("simulated execution timeout")

    loadtest_settings = SETTINGS.loadtest.model_copy(update={"warmup_fraction": 0.0, "kill_grace_s": 10})
    with pytest.raises(TimeoutError):
        run_locust(plan(host=tutormax_api, users=4, spawn_rate=4, run_time_s=120), loadtest_settings, tmp_path,
                   on_window_open=interrupt)  # fmt: skip
    survivors = [
        process.pid for process in psutil.process_iter() if _process_group(process) == started["pgid"]
    ]
    assert survivors == []
    assert (tmp_path / "locust.html").is_file()  # SIGINT, not SIGTERM: the report is written
    assert (tmp_path / "locust.json").is_file()


def _process_group(process: psutil.Process) -> int | None:
    try:
        return os.getpgid(process.pid)
    except (ProcessLookupError, PermissionError):
        return None
