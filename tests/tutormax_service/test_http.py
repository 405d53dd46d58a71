"""uvicorn with `tutormax_service.http.OneWriteHttpToolsProtocol`: a response's headers and body
leave in one write, and nothing is held back: HEAD, a start sent long before its body, streaming,
pipelined requests and an app that fails after its start all answer as with uvicorn's own."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Iterator

import pytest
import uvicorn
from starlette.types import Receive, Scope, Send

from support import serving
from tutormax_ops.core.processes import LOOPBACK
from tutormax_service.http import OneWriteHttpToolsProtocol, _HeaderHolding

START = {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"5")]}
CHUNKED = {"type": "http.response.start", "status": 200, "headers": []}
HELLO = {"type": "http.response.body", "body": b"hello"}
# The late body leaves only once the test has received the headers: order, not a clock, shows that
# the headers were not held back for it.
BODY_RELEASED = threading.Event()


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/late-body":  # the start, then a wait before the body
        await send(START)
        await asyncio.to_thread(BODY_RELEASED.wait, 30)
        await send(HELLO)
    elif path == "/stream":
        await send(CHUNKED)
        for part in (b"one", b"two"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    elif path == "/fail-after-start":
        await send(START)
        raise RuntimeError("after the start")
    else:
        await send(START)
        await send(HELLO)


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    with serving(app, http=OneWriteHttpToolsProtocol, loop="uvloop", log_level="critical") as port:
        yield port


def _exchange(port: int, raw: bytes, *, until: bytes, times: int = 1, timeout: float = 5.0) -> bytes:
    """Send `raw`, read until `until` has arrived `times` times (or the peer closed)."""
    with socket.create_connection((LOOPBACK, port), timeout=timeout) as conn:
        conn.sendall(raw)
        received = b""
        while received.count(until) < times:
            chunk = conn.recv(65536)
            if not chunk:
                break
            received += chunk
        return received


def _request(method: str, path: str) -> bytes:
    return f"{method} {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode()


def test_get_answers_with_headers_and_body(port: int) -> None:
    answer = _exchange(port, _request("GET", "/"), until=b"hello")
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and answer.endswith(b"\r\n\r\nhello")


def test_head_is_answered_although_no_body_follows(port: int) -> None:
    answer = _exchange(port, _request("HEAD", "/"), until=b"\r\n\r\n", timeout=2)
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and answer.endswith(b"\r\n\r\n")


def test_headers_leave_before_a_late_body(port: int) -> None:
    BODY_RELEASED.clear()
    try:
        with socket.create_connection((LOOPBACK, port), timeout=20) as conn:
            conn.sendall(_request("GET", "/late-body"))
            first = conn.recv(65536)  # held headers would time out here: the body waits for this
            assert first.startswith(b"HTTP/1.1 200 OK") and first.endswith(b"\r\n\r\n")
            BODY_RELEASED.set()
            rest = b""
            while not rest.endswith(b"hello") and (chunk := conn.recv(65536)):
                rest += chunk
            assert rest == b"hello"
    finally:
        BODY_RELEASED.set()


def test_streaming_and_pipelined_requests(port: int) -> None:
    answer = _exchange(port, _request("GET", "/stream"), until=b"0\r\n\r\n")
    assert answer.endswith(b"3\r\none\r\n3\r\ntwo\r\n0\r\n\r\n")
    pipelined = b"".join(_request("GET", path) for path in ("/a", "/b", "/c"))
    answers = _exchange(port, pipelined, until=b"hello", times=3).split(b"HTTP/1.1 200 OK\r\n")
    assert answers[0] == b"" and len(answers) == 4
    assert all(answer.endswith(b"\r\n\r\nhello") for answer in answers[1:])


def test_a_failure_after_the_start_still_sends_the_start_and_closes(port: int) -> None:
    answer = _exchange(port, _request("GET", "/fail-after-start"), until=b"never")
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and b"hello" not in answer


class _Written:
    """The transport's writes, as a list; a real transport would send each one by itself."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True


def test_headers_and_body_are_one_write() -> None:
    async def respond() -> list[bytes]:
        transport = _Written()
        holding = _HeaderHolding(transport, asyncio.get_running_loop())  # type: ignore[arg-type]
        holding.write(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n")
        holding.write(b"hello")
        await asyncio.sleep(0)  # the loop's next iteration: nothing more to flush
        holding.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")  # a HEAD: no body
        assert len(transport.writes) == 1
        await asyncio.sleep(0)
        return transport.writes

    writes = asyncio.run(respond())
    assert writes == [
        b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
    ]


def test_the_service_is_served_with_this_protocol_and_uvloop() -> None:
    from tutormax_service import serve

    config = uvicorn.Config("tutormax_service.app:create_app", **serve.uvicorn_options(["--port", "1"]))
    config.load()
    assert config.http_protocol_class is OneWriteHttpToolsProtocol
    with contextlib.closing(config.get_loop_factory()()) as loop:
        assert type(loop).__module__.startswith("uvloop")
