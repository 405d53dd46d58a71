"""A reverse proxy in front of the reference service that records every request it forwards, so a
test counts the requests that reached the service (who sent them, where, when), not what a client
says it sent. Threaded, HTTP/1.1 with keep-alive, one upstream connection per client thread."""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from tutormax_ops.core.processes import LOOPBACK

# Not forwarded: they describe one connection, not the request (RFC 9110 §7.6.1).
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
}


@dataclass(frozen=True)
class Seen:
    at: float  # time.monotonic() when the request arrived
    method: str
    path: str
    user_agent: str
    status: int


class CountingProxy(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, upstream: str) -> None:
        super().__init__((LOOPBACK, 0), _Handler)
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname, parts.port)
        self.seen: list[Seen] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.server_address[1]}"

    def since(self, started: float) -> list[Seen]:
        with self.lock:
            return [seen for seen in self.seen if seen.at >= started]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: CountingProxy

    def log_message(self, format: str, *args: object) -> None:
        """The requests are recorded in `server.seen`; nothing goes to stderr."""

    def _forward(self) -> None:
        arrived = time.monotonic()
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {key: value for key, value in self.headers.items() if key.lower() not in HOP_BY_HOP}
        upstream = getattr(self, "_upstream", None) or http.client.HTTPConnection(
            *self.server.upstream, timeout=120
        )
        self._upstream = upstream
        try:
            upstream.request(self.command, self.path, body=body, headers=headers)
            response = upstream.getresponse()
            payload = response.read()
        except (OSError, http.client.HTTPException):
            upstream.close()
            self._upstream = None
            self.send_error(502, "upstream unreachable")
            self._record(arrived, 502)
            return
        self.send_response(response.status, response.reason)
        for key, value in response.getheaders():
            if key.lower() not in HOP_BY_HOP:
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
        self._record(arrived, response.status)

    def _record(self, arrived: float, status: int) -> None:
        seen = Seen(arrived, self.command, self.path, self.headers.get("User-Agent", ""), status)
        with self.server.lock:
            self.server.seen.append(seen)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _forward


@contextmanager
def counting_proxy(upstream: str) -> Iterator[CountingProxy]:
    proxy = CountingProxy(upstream)
    thread = threading.Thread(target=proxy.serve_forever, name="counting-proxy", daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        proxy.shutdown()
        proxy.server_close()
        thread.join(timeout=30)


# Locust's FastHttpUser sends geventhttpclient's User-Agent; each locust process first fetches its
# ids from /api/ids/sample (include/locust/tutormax_locustfile.py). Nothing else sends either.
LOCUST_USER_AGENT = "python/gevent-http-client"
LOCUST_ID_SAMPLE = "/api/ids/sample"


def from_load_test(seen: Seen) -> bool:
    return seen.user_agent.startswith(LOCUST_USER_AGENT) or seen.path.startswith(LOCUST_ID_SAMPLE)
