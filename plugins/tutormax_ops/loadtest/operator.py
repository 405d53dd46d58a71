"""What the load-test DAG file needs while it is parsed, kept apart from `loadtest` so that
parsing does not import it (about 50 ms): the run operator, the notify choices and the verdict's
failure callback. Each imports `loadtest` only when it runs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow.sdk import BaseOperator

NOTIFY_CHOICES = ("always", "on_problem", "never")


class LoadTestRunOperator(BaseOperator):
    """Runs one load test (`loadtest.execute_run`). Killing the task stops locust's whole process group."""

    template_fields = ("plan",)
    ui_color = "#f4d6a0"

    def __init__(self, *, plan: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan = plan

    def execute(self, context: Any) -> dict[str, Any]:
        from tutormax_ops.loadtest.run import execute_run

        return execute_run(self.plan, context)

    def on_kill(self) -> None:
        # Called on SIGTERM to the task and after an execution timeout (then a no-op: the timeout
        # already stopped the group on its way out of `run_locust`).
        from tutormax_ops.core.config import load_settings
        from tutormax_ops.loadtest.runner import stop_active_run

        stop_active_run("the task was killed", grace_s=load_settings().loadtest.kill_grace_s)


def notify_failure_unless_verdict(context: Mapping[str, Any]) -> None:
    """The usual failure email, except for a verdict: its own email already went out (or `notify`
    said never)."""
    from tutormax_ops.core.notify import notify_task_failure
    from tutormax_ops.loadtest.verdict import LoadTestVerdict

    if isinstance(context.get("exception"), LoadTestVerdict):
        return
    notify_task_failure(context)
