"""core.service: the health check both the guard and the smoke DAG judge answers by."""

from __future__ import annotations

import pytest

from tutormax_ops.core.config import SettingsError, load_settings
from tutormax_ops.core.loadtest_settings import HealthCheck
from tutormax_ops.core.service import describe_health_check, health_problem

REFERENCE = load_settings().service.health_check
TEMPLATE = HealthCheck(path="/api/v1/utils/health-check/", json_field="", json_value=True)


def test_the_reference_service_keeps_its_check_as_the_default() -> None:
    assert (REFERENCE.path, REFERENCE.status, REFERENCE.json_field, REFERENCE.json_value) == (
        "/health", 200, "status", "ok"
    )  # fmt: skip
    assert health_problem(REFERENCE, 200, '{"status": "ok", "database": true, "redis": true}') is None
    assert "answered 503" in health_problem(REFERENCE, 503, '{"status": "degraded"}')


@pytest.mark.parametrize(
    ("check", "status", "body", "ok"),
    [
        (TEMPLATE, 200, "true", True),
        (TEMPLATE, 200, "false", False),
        (TEMPLATE, 200, '"true"', False),  # a string is not the boolean
        (TEMPLATE, 200, "not json", False),
        (
            HealthCheck(path="/hc", json_field="checks.db", json_value="up"),
            200,
            '{"checks": {"db": "up"}}',
            True,
        ),
        (HealthCheck(path="/hc", json_field="checks.db", json_value="up"), 200, '{"checks": {}}', False),
        (HealthCheck(path="/hc", json_field=None), 200, "OK", True),  # plain text: the status decides
        (HealthCheck(path="/hc", status=204, json_field=None), 200, "", False),
    ],
)
def test_a_json_field_check_refuses_a_200_with_the_wrong_value(
    check: HealthCheck, status: int, body: str, ok: bool
) -> None:
    problem = health_problem(check, status, body)
    assert (problem is None) is ok
    if not ok:
        assert f"GET {check.path} answered {status}" in problem and describe_health_check(check) in problem


def test_a_wrong_value_names_what_was_expected() -> None:
    assert health_problem(REFERENCE, 200, '{"status": "degraded"}') == (
        'GET /health answered 200: {"status": "degraded"} (expected GET /health -> 200, status == "ok")'
    )


def test_a_bad_health_check_setting_names_its_field() -> None:
    with pytest.raises(SettingsError, match=r"service\.health_check\.path"):
        load_settings(service={"health_check": {"path": "health"}})
