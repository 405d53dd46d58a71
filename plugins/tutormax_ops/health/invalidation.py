"""The checklist's "cache invalidation on data updates", decided by writing through the service
(`health.invalidation_probe`): read twice (the second answer is the cached one, if the service caches
that route), write, read again. A read that does not change after the write is a stale cache.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from psycopg.rows import dict_row

from tutormax_ops.core.conn_ids import API_CONN_ID, DB_CONN_ID
from tutormax_ops.core.db import collector_session
from tutormax_ops.health.probes import Verdict

if TYPE_CHECKING:
    from tutormax_ops.core.config import InvalidationProbe, Settings

REQUEST_TIMEOUT_S = 10


def fill_body(template: Any, values: dict[str, Any]) -> Any:
    """`template` with every string that is exactly `{column}` replaced by that column's value."""
    if isinstance(template, dict):
        return {key: fill_body(value, values) for key, value in template.items()}
    if isinstance(template, list):
        return [fill_body(value, values) for value in template]
    if isinstance(template, str) and template.startswith("{") and template.endswith("}"):
        name = template[1:-1]
        if name not in values:
            raise KeyError(f"health.invalidation_probe.write_body: {template} is not a column of values_sql")
        value = values[name]
        return value.isoformat() if isinstance(value, datetime | date) else value
    return template


def fill_path(field: str, template: str, values: dict[str, Any]) -> str:
    try:
        return template.format_map({name: quote(str(value), safe="") for name, value in values.items()})
    except KeyError as missing:
        raise KeyError(
            f"health.invalidation_probe.{field}: {{{missing.args[0]}}} is not a column of values_sql"
        ) from None


def _values(probe: InvalidationProbe, settings: Settings) -> dict[str, Any]:
    with collector_session(DB_CONN_ID, settings) as conn, conn.cursor(row_factory=dict_row) as cursor:
        row = cursor.execute(probe.values_sql).fetchone()  # type: ignore[arg-type] - the operator's own query
    if row is None:
        raise LookupError("health.invalidation_probe.values_sql returned no row")
    return row


def check_invalidation(settings: Settings) -> Verdict:
    probe = settings.health.invalidation_probe
    if not probe.enabled:
        return Verdict(
            "cannot tell",
            "the probe writes through the service, so it is off: enable health.invalidation_probe with a "
            "cached read and a write that changes it",
        )
    from tutormax_ops.core.service import api_base_url, api_session

    values = _values(probe, settings)
    read_path = fill_path("read_path", probe.read_path, values)
    write_path = fill_path("write_path", probe.write_path, values)
    body = fill_body(probe.write_body, values)
    base = api_base_url(API_CONN_ID)
    with api_session(API_CONN_ID) as session:

        def send(method: str, path: str, **kwargs: Any) -> Any:
            response = session.request(method, f"{base}{path}", timeout=REQUEST_TIMEOUT_S, **kwargs)
            response.raise_for_status()
            return response

        send("GET", read_path)
        cached = send("GET", read_path).content
        written = send(probe.write_method, write_path, json=body)
        after = send("GET", read_path).content
    action = f"{probe.write_method} {write_path} answered {written.status_code}"
    if after == cached:
        return Verdict(
            "fail", f"{action}, and GET {read_path} still answers the same bytes: a stale cache entry"
        )
    return Verdict("pass", f"{action}; GET {read_path} changed after it ({len(cached):,} → {len(after):,} B)")
