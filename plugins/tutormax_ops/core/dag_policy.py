"""What every tutormax_* DAG shares: owner, retries, failure email, start date and the tag list
that the DAG integrity tests enforce.

One retry after two minutes is for transient faults (a refused connection, a timeout); errors that
cannot heal fail at once (`core.errors`), and a failure whose task already emailed is not emailed
again."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum

OWNER = "tutormax-sre"
START_DATE = pendulum.datetime(2026, 1, 1, tz="UTC")
ALLOWED_TAGS = frozenset({"tutormax", "smoke", "maintenance", "loadtest", "migrations", "cache", "health"})


def default_args(**overrides: Any) -> dict[str, Any]:
    from tutormax_ops.core.errors import notify_failure

    return {
        "owner": OWNER,
        "retries": 1,
        "retry_delay": timedelta(minutes=2),
        "on_failure_callback": notify_failure,
        **overrides,
    }
