"""Fixtures of the health tests: small FastAPI services of a test's own behind `tutormax_api`."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator

import pytest
from fastapi import FastAPI

from support import serving
from tutormax_ops.core.processes import LOOPBACK


@pytest.fixture
def serve(airflow_connections, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[FastAPI], None]]:
    """`serve(app)` runs `app` under uvicorn on a free loopback port and points `tutormax_api` at it."""
    with contextlib.ExitStack() as servers:

        def start(app: FastAPI) -> None:
            port = servers.enter_context(serving(app))
            monkeypatch.setenv(
                "AIRFLOW_CONN_TUTORMAX_API", json.dumps({"conn_type": "http", "host": LOOPBACK, "port": port})
            )

        yield start
