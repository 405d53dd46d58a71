"""Service settings, read from ``TUTORMAX_SERVICE_*`` environment variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tutormax_service.db import normalize_url

ENV_PREFIX = "TUTORMAX_SERVICE_"


def parse_injected_latency(spec: str) -> dict[str, float]:
    """Parse ``"/route/{param}=150,/other=20"`` into ``{route_template: milliseconds}``."""
    latencies: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        route, sep, millis = item.rpartition("=")
        if not sep or not route.startswith("/"):
            raise ValueError(f"expected 'route_template=ms', got {item!r}")
        value = float(millis)
        if value < 0:
            raise ValueError(f"latency must be >= 0 ms, got {item!r}")
        latencies[route.strip()] = value
    return latencies


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True)

    database_url: str = "postgresql+psycopg://postgres@127.0.0.1:5432/tutormax"
    redis_url: str = "redis://127.0.0.1:6379/0"
    cache_ttl_seconds: int = Field(default=300, gt=0)
    # Route template -> extra milliseconds; lets tests simulate a latency regression on one route.
    injected_latency_ms: dict[str, float] = Field(default_factory=dict)
    # Route template -> milliseconds of CPU work in the handler (busy, not asleep): a CPU drill.
    injected_cpu_ms: dict[str, float] = Field(default_factory=dict)
    slow_query_ms: float = Field(default=100.0, ge=0)
    # Per uvicorn worker; also the number of database jobs a worker runs at once. Two cores of
    # PostgreSQL gain nothing from more concurrent queries, and N workers hold N times this.
    db_pool_size: int = Field(default=5, gt=0)
    db_max_overflow: int = Field(default=5, ge=0)
    # Redis connections per uvicorn worker for request handlers (a request waits for a free one).
    redis_pool_size: int = Field(default=16, gt=0)
    # How old a worker's snapshot of tutor and student ids may get before /api/ids/sample reloads it.
    id_snapshot_seconds: float = Field(default=300.0, ge=0)
    # Cached GETs answered by `fastpath` ahead of FastAPI's routing (same answers, less CPU); off
    # serves everything through the routes. A latency drill turns it off too.
    fast_path: bool = True
    # Number of most recent SQL timings kept per process for avg/p95.
    query_window: int = Field(default=10_000, gt=0)

    @field_validator("database_url")
    @classmethod
    def _normalize_database_url(cls, value: str) -> str:
        return normalize_url(value)

    @field_validator("injected_latency_ms", "injected_cpu_ms", mode="before")
    @classmethod
    def _parse_injected_latency(cls, value: Any) -> Any:
        return parse_injected_latency(value) if isinstance(value, str) else value

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        values = {
            name: env[ENV_PREFIX + name.upper()]
            for name in cls.model_fields
            if ENV_PREFIX + name.upper() in env
        }
        return cls(**values)
