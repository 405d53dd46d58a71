"""Requests a locustfile did not name are grouped by route, in Locust's own statistics and in the
per-second records; a name that begins with its method is not prefixed again. Locust runs as a
subprocess (the load test's `-f <locustfile>,record_seconds.py`) against a real HTTP server."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tutormax_ops.collectors.locust import endpoint_name
from tutormax_ops.collectors.locust_seconds import grouped_by_route, read_seconds, route_grouping_note
from tutormax_ops.core.paths import LOCUST_DIR

LOCUSTFILE = LOCUST_DIR / "unnamed_routes_locustfile.py"


class Ok(BaseHTTPRequestHandler):
    def _ok(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    do_GET = do_POST = _ok

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Ok)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_unnamed_requests_are_grouped_by_route_and_named_ones_keep_their_name(
    server: str, tmp_path: Path
) -> None:
    files = f"{LOCUSTFILE},{LOCUST_DIR / 'record_seconds.py'}"
    completed = subprocess.run(
        [sys.executable, "-m", "locust", "-f", files, "--headless", "-u", "4", "-r", "4", "-t", "4s",
         "-H", server, "--json", "--only-summary"],
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(LOCUST_DIR), "TUTORMAX_LOCUST_SERVER_TIMES": str(tmp_path)},
        capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    stats = {
        (entry["method"], entry["name"]): entry["num_requests"] for entry in json.loads(completed.stdout)
    }
    assert set(stats) == {
        ("GET", "/api/v1/items/{id}"),
        ("GET", "/api/v1/users/{id}/orders"),
        ("GET", "/blobs/{id}"),
        ("GET", "GET /api/v1/items/"),
        ("POST", "POST /api/v1/items/"),
        ("GET", "one item"),
    }, stats
    assert min(stats.values()) > 5  # every route kept many requests: none split one per id
    assert {endpoint_name(method, name) for method, name in stats} >= {"/api/v1/items/", "one item"}
    keys = {key for endpoints in read_seconds(tmp_path).seconds.values() for key in endpoints}
    assert "POST /api/v1/items/" in keys and "GET /api/v1/items/" in keys
    assert not any(key.startswith(("GET GET", "POST POST")) for key in keys)
    grouped = grouped_by_route(tmp_path)
    assert set(grouped) == {"GET /api/v1/items/{id}", "GET /api/v1/users/{id}/orders", "GET /blobs/{id}"}
    assert grouped["GET /api/v1/items/{id}"] == stats[("GET", "/api/v1/items/{id}")]
    note = route_grouping_note(tmp_path)
    assert note.count("grouped by route") == 1 and 'name="/api/v1/items/{id}"' in note


def test_a_run_whose_requests_are_all_named_has_no_note(tmp_path: Path) -> None:
    (tmp_path / "seconds-1.json").write_text(json.dumps({"grouped_by_route": {}, "seconds": {}}))
    assert route_grouping_note(tmp_path) is None
