"""Helpers the tests import (`from support import …`); fixtures live in conftest.py."""

from __future__ import annotations

from pathlib import Path


def task_states(dag_run: object) -> dict[str, list[str]]:
    """{task_id: [state per map index]} of a finished DagRun."""
    states: dict[str, list[str]] = {}
    for ti in sorted(dag_run.get_task_instances(), key=lambda ti: (ti.task_id, ti.map_index)):
        states.setdefault(ti.task_id, []).append(str(ti.state))
    return states


def read_emails(maildir: Path) -> list:
    """Every message the SMTP sink stored, parsed, oldest first."""
    from email import policy
    from email.parser import BytesParser

    parser = BytesParser(policy=policy.default)
    return [parser.parsebytes(path.read_bytes()) for path in sorted(maildir.glob("*.eml"))]


class TcpProxy:
    """A pass-through TCP proxy to `target` (host, port) whose `cut()` drops every connection and
    refuses new ones: a server failing mid-run, without stopping the server the other tests share."""

    def __init__(self, target: tuple[str, int]) -> None:
        import socket
        import threading

        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list = []
        self.lock = threading.Lock()
        self.cut_event = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, original: str) -> str:
        """`original` (a URL to `target`) with its host and port replaced by the proxy's."""
        from urllib.parse import urlsplit, urlunsplit

        parts = urlsplit(original)
        credentials = parts.netloc.rpartition("@")[0]
        netloc = f"{credentials}@127.0.0.1:{self.port}" if credentials else f"127.0.0.1:{self.port}"
        return urlunsplit(parts._replace(netloc=netloc))

    def cut(self) -> None:
        import contextlib
        import socket

        self.cut_event.set()
        with self.lock:
            for sock in [self.listener, *self.sockets]:
                # shutdown first: close() alone does not wake a thread blocked in accept(), which would
                # then take one more connection through
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    sock.close()

    def _accept(self) -> None:
        import socket
        import threading

        while not self.cut_event.is_set():
            try:
                client, _ = self.listener.accept()
                if self.cut_event.is_set():
                    client.close()
                    return
                upstream = socket.create_connection(self.target, timeout=10)
                upstream.settimeout(None)  # idle pooled connections must stay open, as without a proxy
            except OSError:
                return
            with self.lock:
                self.sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source, sink) -> None:
        import contextlib

        with contextlib.suppress(OSError):
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        with contextlib.suppress(OSError):
            sink.shutdown(2)


def serving(app: object, **config: object):
    """A context manager: `app` served by uvicorn on a free loopback port, in a thread; yields the port.
    `config`: more `uvicorn.Config` arguments (its HTTP protocol, its loop, its log level)."""
    import contextlib
    import threading
    import time

    import uvicorn

    from tutormax_ops.core.processes import LOOPBACK, free_port

    @contextlib.contextmanager
    def serve():
        port = free_port()
        server = uvicorn.Server(
            uvicorn.Config(app, host=LOOPBACK, port=port, **{"log_level": "warning", **config})
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start in 30 s"
            time.sleep(0.05)
        try:
            yield port
        finally:
            server.should_exit = True
            thread.join(10)

    return serve()


def required_chromium() -> str:
    """Debian's chromium for a browser test: skipped where it is missing, failed with CI=true (where
    `make test` installs it)."""
    import os

    import pytest

    from page import chromium_path

    executable = chromium_path()
    if executable is None:
        if os.environ.get("CI") == "true":
            pytest.fail(
                "CI=true but chromium is missing: `make test` installs it (apt-get install -y chromium)"
            )
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    return executable
