"""Warm requests against a real HTTP server on loopback that counts requests in flight and can
fail the first attempts: concurrency stays bounded, the rate limit holds, 503s are retried."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tutormax_ops.cache.warm import Pacing, Request, p95, run_requests


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        self.seen: dict[str, int] = {}
        self.fail_first = 0  # per path: answer 503 to this many attempts, then 200
        self.delay_s = 0.02


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        server = self.server
        with server.lock:
            server.in_flight += 1
            server.max_in_flight = max(server.max_in_flight, server.in_flight)
            attempt = server.seen.get(self.path, 0)
            server.seen[self.path] = attempt + 1
        time.sleep(server.delay_s)
        with server.lock:
            server.in_flight -= 1
        status = 503 if attempt < server.fail_first or self.path.startswith("/dead") else 200
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[_Server]:
    server = _Server()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _requests(server: _Server, count: int, path: str = "/api/tutors/{}/dashboard") -> list[Request]:
    base = f"http://127.0.0.1:{server.server_address[1]}"
    return [Request("GET", base + path.format(number)) for number in range(count)]


def test_concurrency_is_bounded_and_every_request_is_counted(server: _Server) -> None:
    pacing = Pacing(concurrency=4, rate_per_s=0, retries=0, backoff_s=0, timeout_s=10)
    result = asyncio.run(run_requests("t", _requests(server, 200), pacing))
    assert (result.requested, result.ok, result.failed) == (200, 200, 0)
    assert 1 <= server.max_in_flight <= 4
    assert result.p95_ms is not None and result.p95_ms >= 20  # the server's own 20 ms delay


def test_the_rate_limit_holds(server: _Server) -> None:
    server.delay_s = 0
    pacing = Pacing(concurrency=16, rate_per_s=20, retries=0, backoff_s=0, timeout_s=10)
    started = time.monotonic()
    result = asyncio.run(run_requests("t", _requests(server, 60), pacing))
    elapsed = time.monotonic() - started
    assert result.ok == 60
    # A leaky bucket of 20/s lets a first burst of 20 through, then 20 per second: at least 2 s
    # for 60 requests; without the limit this takes a fraction of a second.
    assert elapsed >= 1.8


def test_failed_attempts_are_retried_with_backoff(server: _Server) -> None:
    server.fail_first = 2
    pacing = Pacing(concurrency=4, rate_per_s=0, retries=3, backoff_s=0.01, timeout_s=10)
    result = asyncio.run(run_requests("t", _requests(server, 20), pacing))
    assert (result.ok, result.failed) == (20, 0)
    assert set(server.seen.values()) == {3}


def test_requests_that_keep_failing_are_counted_as_failed(server: _Server) -> None:
    pacing = Pacing(concurrency=2, rate_per_s=0, retries=1, backoff_s=0.01, timeout_s=10)
    result = asyncio.run(run_requests("t", _requests(server, 5, "/dead/{}"), pacing))
    assert (result.requested, result.ok, result.failed) == (5, 0, 5)
    assert result.p95_ms is None
    assert all("503" in error for error in result.errors)
    assert set(server.seen.values()) == {2}  # one try plus one retry each


def test_p95() -> None:
    assert p95([]) is None
    assert p95([7.0]) == 7.0
    assert p95([float(v) for v in range(1, 101)]) == pytest.approx(95.05)
