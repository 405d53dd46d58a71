"""Step 2, `guard`: refuse a run before any load is sent, and hold the shared advisory lock for it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow.sdk.exceptions import AirflowFailException

from tutormax_ops.core.config import Settings, load_settings
from tutormax_ops.core.conn_ids import DB_CONN_ID
from tutormax_ops.core.loadtest_settings import HealthCheck, LoadTest
from tutormax_ops.core.service import describe_health_check, health_problem
from tutormax_ops.loadtest.model import RunPlan

if TYPE_CHECKING:
    import psycopg


HEALTH_TIMEOUT_S = 5.0


class LoadTestRefused(AirflowFailException):
    """The guard refused the run and says why; retrying cannot change a refusal, so no retry."""


def static_refusals(plan: RunPlan, loadtest: LoadTest) -> list[str]:
    """What can be refused without sending anything anywhere."""
    reasons = []
    parts = urlsplit(plan.host)
    allowed = sorted({host.lower() for host in loadtest.host_allowlist})
    if parts.scheme not in ("http", "https") or (parts.hostname or "").lower() not in allowed:
        reasons.append(f"host {plan.host!r} is not on loadtest.host_allowlist {allowed}")
    if plan.users > loadtest.max_users:
        reasons.append(f"{plan.users} users exceed the cap loadtest.max_users={loadtest.max_users}")
    return reasons


def check_guard(plan_values: Mapping[str, Any]) -> list[str]:
    """Raise `LoadTestRefused` with every reason, or return what was checked (for the log)."""
    from tutormax_ops.core.notify import redact

    settings = load_settings(with_variable=True)
    plan = RunPlan(**plan_values)
    if reasons := static_refusals(plan, settings.loadtest):
        raise LoadTestRefused("load test refused, no request was sent: " + "; ".join(reasons))
    passed = [f"{plan.host} is on the allowlist", f"{plan.users} users within the cap"]
    check = settings.service.health_check
    health = _health_problem(plan.host, check)
    if health:
        raise LoadTestRefused(redact(f"load test refused, no load was sent: {plan.host}: {health}"))
    passed.append(f"{plan.host}: {describe_health_check(check)} as expected")
    holder = _advisory_lock_holder(settings)
    if holder is not None:
        raise LoadTestRefused(
            f"load test refused, no load was sent: advisory lock {settings.coordination.advisory_lock_key} is "
            f"held by pid {holder.pid} ({holder.application_name or 'unnamed'}, for {holder.held_for_s:.0f} s): "
            "a migration or maintenance is running"
        )
    passed.append("no session holds the advisory lock")
    for line in passed:
        print(f"guard: {line}")
    return passed


def _health_problem(host: str, check: HealthCheck) -> str | None:
    import requests

    from tutormax_ops.core.service import credentials_for

    headers, _ = credentials_for(host)
    try:
        response = requests.get(f"{host}{check.path}", timeout=HEALTH_TIMEOUT_S, headers=headers)
    except requests.RequestException as error:
        return f"GET {check.path} failed: {type(error).__name__}: {error}"
    return health_problem(check, response.status_code, response.text)


def service_db(settings: Settings, *, read_only: bool) -> psycopg.Connection:
    from tutormax_ops.core.db import collector_session

    return collector_session(DB_CONN_ID, settings, read_only=read_only)


def _advisory_lock_holder(settings: Settings) -> Any:
    from tutormax_ops.core.coordination import lock_holder

    with service_db(settings, read_only=True) as conn:
        return lock_holder(conn, settings.coordination.advisory_lock_key)


@contextlib.contextmanager
def holding_advisory_lock(settings: Settings) -> Iterator[None]:
    """Hold the shared lock for the whole load, so no migration or maintenance starts under it; a
    session that took it since the guard looked makes the run fail here, before any load."""
    from tutormax_ops.core.coordination import exclusive

    with (
        service_db(settings, read_only=False) as conn,
        exclusive(conn, settings.coordination.advisory_lock_key, wait_s=0),
    ):
        yield
