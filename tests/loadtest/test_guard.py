"""The guard's static refusals: allowlist and user cap."""

from __future__ import annotations

import pytest

from loadtest.factories import SETTINGS, plan
from tutormax_ops.loadtest.guard import static_refusals


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
