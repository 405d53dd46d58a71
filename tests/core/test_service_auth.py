"""The `tutormax_api` connection's `auth` extra: each kind parsed, each mistake named by its field, and
each kind sent to a real HTTP server (a login once, its token reused, masked, never sent elsewhere)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from tutormax_ops.core.service import ApiAuth, api_get, credentials_for


def test_each_kind_of_auth_is_read_from_the_extra() -> None:
    assert ApiAuth.from_extra({}).kind is None
    assert ApiAuth.from_extra({"auth": "bearer"}) == ApiAuth(kind="bearer", prefix="Bearer ")
    header = ApiAuth.from_extra({"auth": {"type": "header", "name": "X-API-Key"}})
    assert (header.kind, header.header, header.prefix) == ("header", "X-API-Key", "")
    login = ApiAuth.from_extra(
        {
            "auth": {
                "type": "login",
                "path": "/api/v1/login/access-token",
                "format": "json",
                "token_field": "data.token",
            }
        }
    )
    assert (login.kind, login.path, login.body_format, login.token_field) == (
        "login",
        "/api/v1/login/access-token",
        "json",
        "data.token",
    )


@pytest.mark.parametrize(
    ("auth", "field"),
    [
        ("basic", "extra.auth: type must be one of"),
        ({"type": "header"}, "extra.auth.name"),
        ({"type": "login"}, "extra.auth.path"),
        ({"type": "login", "path": "/login", "format": "xml"}, "extra.auth.format"),
    ],
)
def test_a_bad_auth_extra_names_its_field(auth: object, field: str) -> None:
    with pytest.raises(ValueError, match=f"connection 'tutormax_api' {field}"):
        ApiAuth.from_extra({"auth": auth})


class _Recorder(BaseHTTPRequestHandler):
    """Answers a JSON login at /login with a token under data.token; records every other request's headers."""

    seen: ClassVar[list[dict[str, str]]] = []
    logins: ClassVar[list[dict]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).logins.append(body)
        self._answer(200, {"data": {"token": f"tok-{len(self.logins)}-{body['email']}"}})

    def do_GET(self) -> None:
        type(self).seen.append(dict(self.headers))
        self._answer(200, True)

    def _answer(self, status: int, document: object) -> None:
        payload = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[str]:
    _Recorder.seen.clear()
    _Recorder.logins.clear()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _connect(monkeypatch: pytest.MonkeyPatch, url: str, **fields: object) -> None:
    port = int(url.rsplit(":", 1)[1])
    conn = {"conn_type": "http", "host": "127.0.0.1", "port": port, "schema": "http", **fields}
    monkeypatch.setenv("AIRFLOW_CONN_TUTORMAX_API", json.dumps(conn))


@pytest.mark.parametrize(
    ("extra", "header", "value"),
    [
        ({"auth": "bearer"}, "Authorization", "Bearer s3cret-token"),
        ({"auth": {"type": "header", "name": "X-API-Key"}}, "X-API-Key", "s3cret-token"),
    ],
)
def test_a_static_token_is_sent_with_every_request(recorder, monkeypatch, extra, header, value) -> None:
    _connect(monkeypatch, recorder, password="s3cret-token", extra=extra)
    assert api_get("/health", timeout_s=5).json() is True
    assert _Recorder.seen[-1][header] == value
    assert "auth" not in {name.lower() for name in _Recorder.seen[-1]}  # the extra's key is no header


def test_a_json_login_runs_once_and_its_token_is_reused_and_masked(recorder, monkeypatch) -> None:
    from airflow.sdk.log import redact

    auth = {"type": "login", "path": "/login", "format": "json", "username_field": "email",
            "password_field": "pw", "token_field": "data.token", "scheme": "Token"}  # fmt: skip
    _connect(monkeypatch, recorder, login="ops@example.com", password="pw-for-login", extra={"auth": auth})
    for _ in range(3):
        api_get("/health", timeout_s=5)
    assert _Recorder.logins == [{"email": "ops@example.com", "pw": "pw-for-login"}]
    token = "tok-1-ops@example.com"
    assert [seen["Authorization"] for seen in _Recorder.seen] == [f"Token {token}"] * 3
    assert token not in str(redact(f"sent {token}")) and "pw-for-login" not in str(redact("pw-for-login"))
    headers, env = credentials_for(recorder)
    assert headers == {"Authorization": f"Token {token}"}
    assert json.loads(env["TUTORMAX_API_HEADERS"]) == headers
    assert (env["TUTORMAX_API_LOGIN"], env["TUTORMAX_API_PASSWORD"]) == ("ops@example.com", "pw-for-login")
    assert credentials_for("http://elsewhere.example:8000") == ({}, {})  # never sent to another host
