"""Plans: the params over the profile, Asset-triggered runs, a stress run's length and window."""

from __future__ import annotations

import pytest

from loadtest.factories import HOST, SETTINGS, plan
from tutormax_ops.loadtest.plan import resolve_plan


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
