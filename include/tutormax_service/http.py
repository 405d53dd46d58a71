"""uvicorn's httptools protocol, sending each response's headers and body in one write.

uvicorn writes a response's status line and headers when the app sends `http.response.start`, and
its body on `http.response.body`: two writes, and under uvloop each is its own `send` system call
and TCP segment (uvloop writes at once when nothing is queued). On loopback a send also does the
receiver's share of the work, and it was one of the service's largest costs per request (issue
16's profile). Here the header block is held until the body's first write, which normally follows
in the same step of the event loop, and both go out in one write. Whatever is held is written
before anything else, before the connection closes, and at the latest on the loop's next
iteration (a HEAD response, or an app that sends the start and then waits), so the bytes on the
wire, their order and the response's timing are as before.

Built on uvicorn's `HttpToolsProtocol` (uvicorn is pinned in requirements.txt): its
`on_headers_complete` makes each request's `RequestResponseCycle`, whose transport this swaps.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class _HeaderHolding:
    """One response's writes: the header block held for the body's first write."""

    __slots__ = ("_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport, self._loop, self._held = transport, loop, b""

    def write(self, data: bytes) -> None:
        if self._held:
            data, self._held = self._held + data, b""
            self._transport.write(data)
        elif data.startswith(b"HTTP/1.1 ") and data.endswith(b"\r\n\r\n"):
            self._held = data
            self._loop.call_soon(self.flush)
        else:
            self._transport.write(data)

    def flush(self) -> None:
        if self._held:
            data, self._held = self._held, b""
            if not self._transport.is_closing():
                self._transport.write(data)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:  # is_closing, get_extra_info, ...: the transport's own
        return getattr(self._transport, name)


class OneWriteHttpToolsProtocol(HttpToolsProtocol):
    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        cycle = getattr(self, "cycle", None)
        if cycle is not None and cycle.transport is self.transport:
            cycle.transport = _HeaderHolding(self.transport, self.loop)
