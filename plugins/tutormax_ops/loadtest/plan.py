"""Step 1, `plan`: the run's plan, from the form's params over the chosen profile."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from tutormax_ops.core.config import Settings, load_settings
from tutormax_ops.core.runs import trigger_of
from tutormax_ops.core.service import api_base_url
from tutormax_ops.loadtest.model import RunPlan
from tutormax_ops.loadtest.traffic import check_locustfile, resolve_locustfile


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


def sized_from_history(settings: Settings, plan: RunPlan, params: Mapping[str, Any], dag_run: Any) -> RunPlan:
    """A profile with `max_run_time_s` and no run time on the form: the run time its recent
    comparable runs say every endpoint needs (loadtest/sizing.py); the first run keeps the profile's."""
    from tutormax_ops.collectors.sampling import min_requests
    from tutormax_ops.loadtest.history import load_history
    from tutormax_ops.loadtest.sizing import judged_rates, size_plan

    maximum = settings.profile(plan.profile).max_run_time_s
    if maximum is None or plan.stress or params.get("run_time") not in (None, ""):
        return plan
    history = load_history(settings, plan, dag_run.dag_id, dag_run.run_id)
    needed = min_requests(confidence=settings.loadtest.regression.confidence)
    return size_plan(plan, judged_rates(history), needed, settings.loadtest.warmup_fraction, maximum)


def plan_from_context(context: Mapping[str, Any]) -> dict[str, Any]:
    trigger = trigger_of(context["dag_run"].run_type)
    params = context["params"]
    default_host = "" if (params.get("host") and trigger != "asset") else api_base_url()
    settings = load_settings(with_variable=True)
    plan = resolve_plan(settings, params, default_host=default_host, trigger=trigger)
    plan = sized_from_history(settings, plan, {} if trigger == "asset" else params, context["dag_run"])
    classes = check_locustfile(plan.profile, settings.loadtest)
    print(f"plan: {plan}")
    print(f"locustfile {plan.locustfile} loads; its user classes: {', '.join(classes)}")
    return asdict(plan)
