"""Warm requests: bounded concurrency (a fixed pool of workers), a rate limit (aiolimiter's leaky
bucket) and retries with exponential backoff (tenacity) on transport errors, 429 and 5xx.

Each target reports requested / ok / failed and the p95 latency of its successful requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from aiolimiter import AsyncLimiter
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential


@dataclass(frozen=True)
class Request:
    method: str
    url: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Pacing:
    concurrency: int
    rate_per_s: float  # 0: unlimited
    retries: int
    backoff_s: float
    timeout_s: float


@dataclass(frozen=True)
class TargetResult:
    target: str
    requested: int
    ok: int
    failed: int
    p95_ms: float | None
    seconds: float
    errors: tuple[str, ...] = ()  # the first few, for the log and the report


class _Retryable(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")


def _retryable(error: BaseException) -> bool:
    return isinstance(error, _Retryable | httpx.TransportError)


def p95(values: Sequence[float]) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=20, method="inclusive")[18]


async def _send(
    client: httpx.AsyncClient, request: Request, limiter: AsyncLimiter | None, pacing: Pacing
) -> float:
    """One request with its retries; returns the latency (ms) of the attempt that succeeded."""
    async for attempt in AsyncRetrying(
        stop=stop_after_attempt(pacing.retries + 1),
        wait=wait_exponential(multiplier=pacing.backoff_s, max=30),
        retry=retry_if_exception(_retryable),
        reraise=True,
    ):
        with attempt:
            async with limiter if limiter else contextlib.nullcontext():
                started = time.perf_counter()
                response = await client.request(request.method, request.url, params=request.params)
            elapsed = (time.perf_counter() - started) * 1000
            if response.status_code == 429 or response.status_code >= 500:
                raise _Retryable(response.status_code)
            response.raise_for_status()
    return elapsed


async def run_requests(
    target: str,
    requests: Sequence[Request],
    pacing: Pacing,
    *,
    client: httpx.AsyncClient | None = None,
    headers: Mapping[str, str] | None = None,
) -> TargetResult:
    """Send `requests` through `pacing.concurrency` workers, with `headers` (the service's credentials)
    on each; failures are counted, never raised."""
    queue: asyncio.Queue[Request] = asyncio.Queue()
    for request in requests:
        queue.put_nowait(request)
    limiter = AsyncLimiter(pacing.rate_per_s, 1) if pacing.rate_per_s > 0 else None
    latencies: list[float] = []
    errors: list[str] = []
    owned = client is None
    limits = httpx.Limits(max_connections=pacing.concurrency, max_keepalive_connections=pacing.concurrency)
    client = client or httpx.AsyncClient(timeout=pacing.timeout_s, limits=limits, headers=headers)

    async def worker() -> None:
        while True:
            try:
                request = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            try:
                latencies.append(await _send(client, request, limiter, pacing))
            except (httpx.HTTPError, _Retryable) as error:
                errors.append(f"{request.method} {request.url}: {type(error).__name__}: {error}")

    started = time.perf_counter()
    try:
        await asyncio.gather(*(worker() for _ in range(min(pacing.concurrency, max(len(requests), 1)))))
    finally:
        if owned:
            await client.aclose()
    return TargetResult(
        target=target,
        requested=len(requests),
        ok=len(latencies),
        failed=len(errors),
        p95_ms=round(p95(latencies), 2) if latencies else None,
        seconds=round(time.perf_counter() - started, 3),
        errors=tuple(errors[:5]),
    )
