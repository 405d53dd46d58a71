"""The stress profile's steps, knee and limits from synthetic Locust history rows and CPU samples."""

from __future__ import annotations

import csv
from pathlib import Path

from tutormax_ops.core.settings_base import Targets
from tutormax_ops.loadtest.machine import judge_limits
from tutormax_ops.loadtest.model import LIMITED_BY_MACHINE, LIMITED_BY_PROFILE, Generators, knee_line
from tutormax_ops.loadtest.stress import SETTLE_S, StepSchedule, find_knee, load_steps

T0 = 1_700_000_000
STEP_S = 30
TARGETS = Targets()  # p95 < 200 ms, errors < 1 %


def write_history(path: Path, rows: list[tuple[int, int, float, int, int]]) -> None:
    """(second after T0, users, p95, total requests, total failures) per aggregate row, as locust
    writes them; an endpoint row beside each, which the steps must ignore."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Timestamp", "User Count", "Type", "Name", "Requests/s", "95%", "Total Request Count",
                         "Total Failure Count"])  # fmt: skip
        for second, users, p95, total, failures in rows:
            writer.writerow([T0 + second, users, "GET", "/api/tutors", 0, 5000, total // 2, 0])
            writer.writerow([T0 + second, users, "", "Aggregated", 0, p95, total, failures])


def steady(steps: list[tuple[int, float, list[int]]], *, errors_from: int | None = None) -> list[tuple]:
    """Rows for consecutive 30 s steps: (users, req/s, p95 of each second) per step; the first
    seconds of a step ramp the observed user count up, as locust's spawning does."""
    rows, total, failures = [], 0, 0
    previous = 0
    for index, (users, rps, p95s) in enumerate(steps):
        assert len(p95s) == STEP_S
        for offset, p95 in enumerate(p95s):
            total += int(rps)
            if errors_from is not None and index >= errors_from:
                failures += int(rps) // 10
            observed = previous + (users - previous) * min(1.0, (offset + 1) / 3)  # spawning
            rows.append((index * STEP_S + offset + 1, int(observed), p95, total, failures))
        previous = users
    return rows


def schedule(max_users: int) -> StepSchedule:
    return StepSchedule(T0 + 0.5, 100, STEP_S, max_users)


def test_a_step_whose_last_row_passes_while_most_rows_fail_fails(tmp_path: Path) -> None:
    history = tmp_path / "locust_stats_history.csv"
    # Step 2: its settled rows mostly at 210-250 ms, its last row at 130 ms (what `end["95%"]` read).
    noisy = [60] * SETTLE_S + [210, 250, 180, 230, 220, 240, 190, 215, 235, 225] * 2
    noisy[-1] = 130
    write_history(history, steady([(100, 95, [40] * STEP_S), (200, 190, noisy)]))
    steps = load_steps(history, schedule(200), TARGETS)
    assert [step.users for step in steps] == [100, 200]
    second = steps[1]
    assert not second.meets_targets
    assert second.p95_ms is not None and second.p95_ms >= 200
    assert (second.p95_min_ms, second.p95_max_ms) == (130, 250)
    assert second.failing_rows > second.rows // 2
    assert abs(second.rps - 190) < 1 and second.error_rate == 0


def test_a_pass_above_a_failing_step_is_not_the_knee(tmp_path: Path) -> None:
    history = tmp_path / "locust_stats_history.csv"
    write_history(
        history,
        steady([(100, 95, [40] * 30), (200, 190, [90] * 30), (300, 240, [260] * 30), (400, 260, [150] * 30)]),
    )
    steps = load_steps(history, schedule(400), TARGETS)
    assert [step.meets_targets for step in steps] == [True, True, False, True]  # a noisy pass at 400
    knee = find_knee(steps, TARGETS)
    assert knee is not None and knee.step.users == 200 and knee.next_step is steps[2]
    assert (
        knee.describe()
        == "200 users, 190 req/s, p95 90 ms; the next step (300 users) failed at p95 260–260 ms"
    )
    # No per-second histograms were recorded: the knee stands, unconfirmed, saying why.
    assert not knee.confirmed and "no upper bound" in knee.confirmation
    assert knee_line(knee, None) == "knee 190 req/s at 200 users"


def test_ramp_down_rows_and_a_cut_step_produce_no_step(tmp_path: Path) -> None:
    history = tmp_path / "locust_stats_history.csv"
    rows = steady([(100, 95, [40] * 30), (200, 190, [60] * 30)])
    last_second, total = rows[-1][0], rows[-1][3]
    # After the shape stops: users stop one by one, rows keep coming with falling user counts.
    rows += [(last_second + k, users, 0, total, 0) for k, users in enumerate((150, 75, 25, 0), start=1)]
    write_history(history, rows)
    steps = load_steps(history, schedule(200), TARGETS)
    settled = STEP_S - SETTLE_S
    assert [(step.users, step.rows, step.p95_min_ms) for step in steps] == [
        (100, settled, 40),
        (200, settled, 60),
    ]
    # A schedule reaching a third step the run never got to: no step from its missing rows.
    assert [step.users for step in load_steps(history, schedule(300), TARGETS)] == [100, 200]


def test_the_knee_is_confirmed_by_the_steps_own_requests(tmp_path: Path) -> None:
    history = tmp_path / "locust_stats_history.csv"
    write_history(history, steady([(100, 95, [40] * 30), (200, 190, [300] * 30)]))
    fast = {45: 50, 30: 900}  # p95 45 ms over 950 requests a second
    slow = {250: 60, 120: 800}
    seconds = {T0 + s: (fast if s < STEP_S else slow) for s in range(2 * STEP_S + 1)}
    steps = load_steps(history, schedule(200), TARGETS, seconds=seconds)
    assert steps[0].pooled_requests == 950 * (STEP_S - SETTLE_S)
    knee = find_knee(steps, TARGETS)
    assert knee is not None and knee.step.users == 100 and knee.confirmed, knee.confirmation
    assert knee.step.pooled_high_ms is not None and knee.step.pooled_high_ms < 200


def test_no_knee_when_the_first_step_fails_and_a_lower_bound_when_none_fails(tmp_path: Path) -> None:
    history = tmp_path / "locust_stats_history.csv"
    write_history(history, steady([(100, 95, [400] * 30), (200, 190, [60] * 30)]))
    assert find_knee(load_steps(history, schedule(200), TARGETS), TARGETS) is None
    write_history(history, steady([(100, 95, [40] * 30), (200, 190, [60] * 30)]))
    knee = find_knee(load_steps(history, schedule(200), TARGETS), TARGETS)
    assert knee is not None and knee.step.users == 200 and knee.next_step is None
    assert knee.describe().endswith(
        "no step failed: the profile's top step was reached, so the knee is at least this; extend users to 400 to find it"
    )
    assert knee_line(knee, None).startswith("knee ≥ ")


def test_errors_fail_a_step_and_name_themselves_in_the_margin(tmp_path: Path) -> None:
    history = tmp_path / "locust_stats_history.csv"
    write_history(history, steady([(100, 95, [40] * 30), (200, 190, [40] * 30)], errors_from=1))
    steps = load_steps(history, schedule(200), TARGETS)
    assert [step.meets_targets for step in steps] == [True, False]
    knee = find_knee(steps, TARGETS)
    assert knee is not None and knee.describe().endswith("failed at 10.0% errors")


def test_a_saturated_machine_is_the_limit_and_the_knee_a_lower_bound(tmp_path: Path) -> None:
    history = tmp_path / "locust_stats_history.csv"
    write_history(history, steady([(100, 95, [40] * 30), (200, 190, [300] * 30)]))
    steps = load_steps(history, schedule(200), TARGETS)
    seconds = range(1, 2 * STEP_S)

    def limits(host: float, processes: int = 1, *, here: bool = True) -> object:
        samples = {
            "host": [(T0 + s, host) for s in seconds],
            "generator": [(T0 + s, 40.0) for s in seconds],
            "service": [(T0 + s, 80.0) for s in seconds],
        }
        generators = Generators(processes, ("gen-a", "gen-b") if not here else ("ci",), here)
        return judge_limits(samples, steps, cores=2, generators=generators, host_saturation_percent=95,
                            cpu_saturation_percent=90, max_saturated_fraction=0.25)  # fmt: skip

    busy = limits(99.0)
    assert busy.limited_by == LIMITED_BY_MACHINE and "Limited by this machine" in busy.note
    knee = find_knee(steps, TARGETS)
    assert knee_line(knee, busy) == "knee ≥ 95 req/s at 100 users (limited by this machine)"
    quiet = limits(60.0)
    assert quiet.limited_by == "the service" and quiet.host_busy_pct == 60.0
    assert "the service's processes 80% of one core (40% of the machine)" in quiet.note
    # With worker processes, their CPU together is set beside the machine's.
    workers = limits(60.0, processes=2)
    assert "the 2 local workers used 40% of one core in total (20% of the machine)" in workers.note
    assert workers.note.startswith("Limited by the service. The load came from 2 processes on 1 host (ci);")
    # Every generator elsewhere: a saturated machine here is the service's, not a shared generator's.
    remote = limits(99.0, processes=4, here=False)
    assert remote.limited_by == "the service" and remote.note.startswith("Limited by the service.")
    assert "4 processes on 2 hosts (gen-a, gen-b), none on this machine" in remote.note


def test_a_run_none_of_whose_steps_failed_was_limited_by_the_profile(tmp_path: Path) -> None:
    history = tmp_path / "locust_stats_history.csv"
    write_history(history, steady([(100, 95, [40] * 30), (200, 190, [60] * 30)]))
    steps = load_steps(history, schedule(200), TARGETS)
    # The machine at 100% throughout: still, no step failed, so the profile ran out first.
    samples = {"host": [(T0 + s, 100.0) for s in range(1, 2 * STEP_S)]}
    limits = judge_limits(samples, steps, cores=2, generators=Generators(1, ("ci",), True),
                          host_saturation_percent=95, cpu_saturation_percent=90, max_saturated_fraction=0.25)  # fmt: skip
    assert limits.limited_by == LIMITED_BY_PROFILE and not limits.failed and limits.at_users == 200
    assert limits.note.startswith(
        "Limited by the profile's top step: every step met the targets up to 200 users, so the knee is a "
        "lower bound; extend users to 400 to find it (with more generator hosts: this machine was already saturated"
    )
    knee = find_knee(steps, TARGETS)
    assert knee_line(knee, limits) == "knee ≥ 190 req/s at 200 users (limited by the profile's top step)"
