"""The service under test, as every capability sees it: its base URL (the `tutormax_api` connection)
and the judgement of its health check (`service.health_check`), shared by the load-test guard and the
smoke DAG so that both accept exactly the same answers."""

from __future__ import annotations

import json
from typing import Any

from tutormax_ops.core.conn_ids import API_CONN_ID
from tutormax_ops.core.loadtest_settings import HealthCheck

_MISSING = object()


def api_base_url(conn_id: str = API_CONN_ID) -> str:
    """The `tutormax_api` connection as a base URL (no credentials: load needs none)."""
    from airflow.sdk import BaseHook

    conn = BaseHook.get_connection(conn_id)
    host = conn.host or ""
    if "://" in host:
        return host.rstrip("/")
    netloc = f"[{host}]" if ":" in host else host  # IPv6 literal
    return f"{conn.schema or 'http'}://{netloc}{f':{conn.port}' if conn.port else ''}"


def describe_health_check(check: HealthCheck) -> str:
    """`GET /health -> 200, status == 'ok'`, for logs and refusals."""
    expected = f"GET {check.path} -> {check.status}"
    if check.json_field is None:
        return expected
    return f"{expected}, {check.json_field or 'the body'} == {json.dumps(check.json_value)}"


def health_problem(check: HealthCheck, status_code: int, body: str) -> str | None:
    """What is wrong with a health answer, or None when it is what `check` expects."""
    answered = f"GET {check.path} answered {status_code}: {body[:200]}"
    if status_code != check.status:
        return f"{answered} (expected {describe_health_check(check)})"
    if check.json_field is None:
        return None
    try:
        document = json.loads(body)
    except ValueError:
        return f"{answered} (expected JSON: {describe_health_check(check)})"
    value = _field(document, check.json_field)
    if value is _MISSING or value != check.json_value:
        return f"{answered} (expected {describe_health_check(check)})"
    return None


def _field(document: Any, dotted: str) -> Any:
    for key in dotted.split(".") if dotted else ():
        if not isinstance(document, dict) or key not in document:
            return _MISSING
        document = document[key]
    return document
