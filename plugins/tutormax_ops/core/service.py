"""The service under test, as every capability sees it: its base URL (the `tutormax_api` connection),
its credentials, and the judgement of its health check (`service.health_check`), shared by the
load-test guard and the smoke DAG so that both accept exactly the same answers.

Credentials come only from the `tutormax_api` connection: its password (and login), with the kind of
authentication in its extra under `"auth"` (the key is removed before the extra's other keys are sent
as headers, as the HTTP provider does):

- `{"auth": "bearer"}`: `Authorization: Bearer <password>` (a static token);
- `{"auth": {"type": "header", "name": "X-API-Key"}}`: that header, with the password as its value
  (`"prefix": "Token "` puts text before it);
- `{"auth": {"type": "login", "path": "/api/v1/login/access-token", "format": "form"}}`: one login
  request per task with the connection's login and password (`format` `form` or `json`; the field
  names `username_field`/`password_field`, by default `username`/`password`), whose answer's
  `token_field` (dotted, default `access_token`) is sent as `Authorization: <scheme> <token>`
  (`scheme` default `Bearer`) with every later request of that task.

No `auth`, with a login: HTTP basic auth (the provider's default). Every secret is registered with
Airflow's masker as soon as it is read or obtained, so no log line shows it.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tutormax_ops.core.conn_ids import API_CONN_ID
from tutormax_ops.core.loadtest_settings import HealthCheck

if TYPE_CHECKING:
    from tutormax_ops.core.config import Settings

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


def allowed_base_url(settings: Settings, purpose: str) -> str:
    """The service's base URL, if its host is on `loadtest.host_allowlist`: whatever sends it more
    than a probe (warming, a rate-limit burst) asks first; `purpose` names it in the refusal."""
    from urllib.parse import urlsplit

    base = api_base_url()
    host = (urlsplit(base).hostname or "").lower()
    allowed = sorted({h.lower() for h in settings.loadtest.host_allowlist})
    if host not in allowed:
        raise PermissionError(
            f"{purpose} host {host!r} ({API_CONN_ID}) is not on loadtest.host_allowlist {allowed}"
        )
    return base


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


AUTH_KINDS = ("bearer", "header", "login")
# What a locustfile finds in its environment (the load test's host is the connection's): the headers
# that authenticate (a static token, or the token of the task's login), as a JSON object, and the
# connection's login and password for a locustfile that logs each user in itself.
HEADERS_ENV = "TUTORMAX_API_HEADERS"
LOGIN_ENV = "TUTORMAX_API_LOGIN"
PASSWORD_ENV = "TUTORMAX_API_PASSWORD"


@dataclass(frozen=True)
class ApiAuth:
    """How `tutormax_api` authenticates, from its extra's `auth` (see the module docstring)."""

    kind: str | None = None
    header: str = "Authorization"
    prefix: str = ""
    path: str = ""
    body_format: str = "form"
    username_field: str = "username"
    password_field: str = "password"
    token_field: str = "access_token"
    scheme: str = "Bearer"

    @classmethod
    def from_extra(cls, extra: dict[str, Any], conn_id: str = API_CONN_ID) -> ApiAuth:
        raw = extra.get("auth")
        if raw is None:
            return cls()
        spec = {"type": raw} if isinstance(raw, str) else raw
        where = f"connection {conn_id!r} extra.auth"
        if not isinstance(spec, dict) or spec.get("type") not in AUTH_KINDS:
            raise ValueError(f"{where}: type must be one of {list(AUTH_KINDS)}, got {raw!r}")
        kind = spec["type"]
        if kind == "bearer":
            return cls(kind="bearer", prefix="Bearer ")
        if kind == "header":
            if not spec.get("name"):
                raise ValueError(f"{where}.name: the header that carries the password is required")
            return cls(kind="header", header=str(spec["name"]), prefix=str(spec.get("prefix", "")))
        if not str(spec.get("path", "")).startswith("/"):
            raise ValueError(f"{where}.path: the login route, starting with '/', is required")
        if spec.get("format", "form") not in ("form", "json"):
            raise ValueError(f"{where}.format: 'form' or 'json', got {spec.get('format')!r}")
        return cls(
            kind="login",
            path=str(spec["path"]),
            body_format=str(spec.get("format", "form")),
            username_field=str(spec.get("username_field", "username")),
            password_field=str(spec.get("password_field", "password")),
            token_field=str(spec.get("token_field", "access_token")),
            scheme=str(spec.get("scheme", "Bearer")),
        )


def _mask(secret: str) -> str:
    from airflow.sdk.log import mask_secret

    if secret:
        mask_secret(secret)
    return secret


def auth_headers(conn_id: str = API_CONN_ID) -> dict[str, str]:
    """The headers that authenticate to the service: a static token, or the token of one login
    request (made once per task process for this connection, and reused). Empty without `auth`."""
    from airflow.sdk import BaseHook

    conn = BaseHook.get_connection(conn_id)
    auth = ApiAuth.from_extra(conn.extra_dejson, conn_id)
    if auth.kind is None:
        return {}
    password = _mask(conn.password or "")
    if not password:
        raise ValueError(f"connection {conn_id!r}: extra.auth is {auth.kind!r} but the password is empty")
    if auth.kind in ("bearer", "header"):
        return {auth.header: _mask(auth.prefix + password)}
    headers = _login_headers(api_base_url(conn_id), auth, conn.login or "", password, conn_id)
    return {name: _mask(value) for name, value in headers}


@functools.lru_cache(maxsize=8)
def _login_headers(
    base_url: str, auth: ApiAuth, login: str, password: str, conn_id: str
) -> tuple[tuple[str, str], ...]:
    token = _mask(_log_in(base_url, auth, login, password, conn_id))
    return (("Authorization", f"{auth.scheme} {token}".strip()),)


def _log_in(base_url: str, auth: ApiAuth, login: str, password: str, conn_id: str) -> str:
    import requests

    fields = {auth.username_field: login, auth.password_field: password}
    body = {"json": fields} if auth.body_format == "json" else {"data": fields}
    response = requests.post(f"{base_url}{auth.path}", timeout=15, **body)
    if response.status_code != 200:
        raise PermissionError(
            f"connection {conn_id!r}: login POST {auth.path} ({auth.body_format}, as {login!r}) answered "
            f"{response.status_code}: {response.text[:200]}"
        )
    token = _field(response.json(), auth.token_field)
    if not isinstance(token, str) or not token:
        raise PermissionError(
            f"connection {conn_id!r}: login POST {auth.path} answered 200 without a string at "
            f"extra.auth.token_field {auth.token_field!r} (keys: {sorted(response.json())})"
        )
    return token


def api_session(conn_id: str = API_CONN_ID) -> Any:
    """A `requests.Session` for the service as the HTTP provider builds it (TLS options, the extra's
    headers), minus the extra's `auth` key, plus `auth_headers`."""
    from airflow.providers.http.hooks.http import HttpHook

    conn_extra_auth = ApiAuth.from_extra(HttpHook.get_connection(conn_id).extra_dejson, conn_id)
    session = HttpHook(method="GET", http_conn_id=conn_id).get_conn()
    session.headers.pop("auth", None)
    if conn_extra_auth.kind is not None:
        session.auth = None  # the login and password serve the configured auth, not basic auth
        session.headers.update(auth_headers(conn_id))
    return session


def api_get(path: str, *, timeout_s: float, conn_id: str = API_CONN_ID) -> Any:
    """GET `path` on the service, authenticated; the response whatever its status."""
    with api_session(conn_id) as session:
        return session.get(f"{api_base_url(conn_id)}{path}", timeout=timeout_s)


def credentials_for(host: str, conn_id: str = API_CONN_ID) -> tuple[dict[str, str], dict[str, str]]:
    """(headers, locustfile environment) for requests to `host`: the connection's credentials when
    `host` is the connection's own base URL, none for any other host (they are never sent elsewhere)."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        conn = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:  # a host given by hand, and no connection: nothing to send
        return {}, {}
    if host.rstrip("/") != api_base_url(conn_id):
        return {}, {}
    headers = auth_headers(conn_id)
    env = {HEADERS_ENV: json.dumps(headers)}
    if conn.login:
        env[LOGIN_ENV] = conn.login
    if conn.password:
        env[PASSWORD_ENV] = _mask(conn.password)
    return headers, env
