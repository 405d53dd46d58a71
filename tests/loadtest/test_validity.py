"""Validity: stalls in the completed requests, and the run's length by Locust's own log."""

from __future__ import annotations

from datetime import UTC, datetime

from loadtest.factories import endpoint, locust_run
from tutormax_ops.collectors.locust import _log_span
from tutormax_ops.loadtest.validity import find_stall, validate_run

T0 = 1_796_000_000


def per_second(counts: list[int]) -> list[tuple[int, int]]:
    return [(T0 + index, count) for index, count in enumerate(counts)]


def test_a_gap_in_completed_requests_is_a_stall_with_its_time_and_length() -> None:
    counts = [20, 19, 22, 21, 0, 0, 0, 0, 0, 0, 0, 1, 60, 25, 20, 21, 19, 20, 22, 20, 21, 20]
    stall = find_stall(per_second(counts), min_s=5, fraction=0.1)
    assert stall is not None and stall.seconds == 8 and stall.completed == 1
    assert stall.start == datetime.fromtimestamp(T0 + 4, UTC)
    assert "stalled at" in stall.describe() and "for 8 s" in stall.describe()


def test_noise_and_short_dips_are_not_stalls() -> None:
    assert (
        find_stall(per_second([20, 3, 25, 0, 18, 1, 0, 22, 19, 20, 0, 0, 0, 0, 21]), min_s=5, fraction=0.1)
        is None
    )
    assert find_stall([], min_s=5, fraction=0.1) is None


def test_duration_runs_from_locusts_timer_to_its_stop_line() -> None:
    log = (
        "[2026-11-30 00:58:24,433] vm/INFO/locust.main: Run time limit set to 15 seconds\n"
        "[2026-11-30 00:58:24,647] vm/INFO/locust.runners: Ramping to 20 users at a rate of 10.00 per second\n"
        "[2026-11-30 00:58:39,440] vm/INFO/locust.main: --run-time limit reached, shutting down\n"
        "[2026-11-30 00:58:44,606] vm/INFO/locust.main: Shutting down (exit code 0)\n"
    )
    assert _log_span(log) == (15.007, "locust log")
    cut = log.splitlines()[:2]
    assert _log_span("\n".join(cut)) == (0.214, "locust log")  # killed: ends at its last line
    assert _log_span("no stamps here") == (None, "requests")


def test_a_saturated_machine_makes_the_run_invalid_and_100_switches_the_check_off() -> None:
    run = locust_run(endpoint("Aggregated"))
    busy = [99.0] * 30 + [60.0] * 10
    reasons = validate_run(
        run, planned_duration_s=6, host_cpu_samples=busy, host_saturation_percent=95
    ).reasons
    assert reasons == (
        "the machine's CPU was above 95% of all cores in 75% of 40 samples: latencies measured the host's "
        "queue, not the service",
    )
    assert validate_run(
        run, planned_duration_s=6, host_cpu_samples=[100.0] * 40, host_saturation_percent=100
    ).valid
