"""The report step's choices."""

from __future__ import annotations

from tutormax_ops.loadtest.report import should_notify


def test_notify_param() -> None:
    assert should_notify("always", "pass") and not should_notify("never", "regression")
    assert should_notify("on_problem", "invalid") and not should_notify("on_problem", "pass")
