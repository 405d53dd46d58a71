"""Step 1, `plan`: the run's plan, from the form's params over the chosen profile."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

from tutormax_ops.core.config import Settings, load_settings
from tutormax_ops.core.paths import LOCUST_DIR
from tutormax_ops.core.runs import trigger_of
from tutormax_ops.core.service import api_base_url
from tutormax_ops.loadtest.traffic import check_locustfile, resolve_locustfile


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


def resolve_plan(
    settings: Settings, params: Mapping[str, Any], *, default_host: str, trigger: str
) -> RunPlan:
    """Params over the profile's values. An Asset event carries no form: the post-migration check is
    always the plain `smoke` profile against the default host."""
    chosen = (
        {} if trigger == "asset" else {key: value for key, value in params.items() if value not in (None, "")}
    )
    name = "smoke" if trigger == "asset" else chosen.get("profile", settings.loadtest.default_profile)
    profile = settings.profile(name)
    return RunPlan(
        profile=name,
        host=str(chosen.get("host") or default_host).rstrip("/"),
        users=int(chosen.get("users", profile.users)),
        spawn_rate=float(chosen.get("spawn_rate", profile.spawn_rate)),
        run_time_s=int(chosen.get("run_time", profile.run_time_s)),
        processes=int(chosen.get("processes", 0)),
        notify=str(params.get("notify") or "on_problem"),
        trigger=trigger if trigger in ("schedule", "asset") else "manual",  # type: ignore[arg-type]
        step_users=profile.step_users,
        step_seconds=profile.step_seconds,
        locustfile=str(resolve_locustfile(profile)),
        user_classes=profile.user_classes,
        tags=profile.tags,
    )


def plan_from_context(context: Mapping[str, Any]) -> dict[str, Any]:
    trigger = trigger_of(context["dag_run"].run_type)
    params = context["params"]
    default_host = "" if (params.get("host") and trigger != "asset") else api_base_url()
    settings = load_settings(with_variable=True)
    plan = resolve_plan(settings, params, default_host=default_host, trigger=trigger)
    classes = check_locustfile(plan.profile, settings.loadtest)
    print(f"plan: {plan}")
    print(f"locustfile {plan.locustfile} loads; its user classes: {', '.join(classes)}")
    return asdict(plan)
