"""ASGI application factory.

``uvicorn --factory tutormax_service.app:create_app`` builds an app from the environment;
``tutormax_service.app:app`` is the same, built at import time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import redis
import redis.asyncio
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError
from sqlalchemy.orm import sessionmaker
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tutormax_service.cache import Cache
from tutormax_service.db import make_engine
from tutormax_service.errors import ServiceError
from tutormax_service.fastpath import CachedReads
from tutormax_service.metrics import QueryStats, instrument_engine
from tutormax_service.routes import admin, health, ids, performance, sessions, students, tutors
from tutormax_service.sampling import IdSampler
from tutormax_service.settings import Settings


class ResponseTimeMiddleware:
    """Adds ``X-Response-Time: 12.34ms`` (time to response start) to every HTTP response.

    Plain ASGI rather than BaseHTTPMiddleware: no extra task or body buffering per request.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def send_with_timing(message: Message) -> None:
            if message["type"] == "http.response.start":
                elapsed_ms = (time.perf_counter() - started) * 1000
                # What MutableHeaders(scope=message).append does, without building one per response.
                headers = message["headers"] = list(message.get("headers", ()))
                headers.append((b"x-response-time", b"%.2fms" % elapsed_ms))
            await send(message)

        await self.app(scope, receive, send_with_timing)


async def inject_latency(request: Request) -> None:
    """Burn the route's TUTORMAX_SERVICE_INJECTED_CPU_MS of CPU, then sleep for its
    TUTORMAX_SERVICE_INJECTED_LATENCY_MS (regression drills).

    A dependency rather than middleware because the matched route template is known only
    after routing.
    """
    template = getattr(request.scope.get("route"), "path", None)
    settings = request.app.state.settings
    if cpu_ms := settings.injected_cpu_ms.get(template):
        # Busy on the event loop, as CPU-bound code in a handler is: the worker serves nothing else.
        until = time.process_time() + cpu_ms / 1000
        while time.process_time() < until:
            pass
    if delay_ms := settings.injected_latency_ms.get(template):
        await asyncio.sleep(delay_ms / 1000)


async def _service_error(request: Request, exc: ServiceError) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=exc.status_code)


async def _redis_unavailable(request: Request, exc: RedisError) -> JSONResponse:
    # Only cache-management endpoints let Redis errors escape; reads degrade to the database.
    return JSONResponse({"detail": f"redis unavailable: {exc}"}, status_code=503)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings.from_env()
    engine = make_engine(settings)
    query_stats = QueryStats(settings.slow_query_ms, settings.query_window)
    instrument_engine(engine, query_stats)
    # Short socket timeouts: with Redis down, reads should fall back to the DB quickly, not hang.
    timeouts = {"socket_timeout": 1.0, "socket_connect_timeout": 0.5}
    redis_client = redis.Redis.from_url(settings.redis_url, **timeouts)
    # The asyncio client connects lazily, on the event loop of its first command. Its pool is
    # bounded (an unbounded one opens a connection per concurrent request, and under load those
    # connects time out and send cache hits to the database); Cache makes requests wait for a free
    # connection rather than fail.
    aredis_client = redis.asyncio.Redis.from_pool(
        redis.asyncio.ConnectionPool.from_url(
            settings.redis_url, max_connections=settings.redis_pool_size, **timeouts
        )
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # As many database jobs in flight as the pool has connections (see routes.common.run_db).
        app.state.db_limiter = anyio.CapacityLimiter(settings.db_pool_size + settings.db_max_overflow)
        await anyio.to_thread.run_sync(app.state.id_sampler.preload, app.state.session_factory)
        yield
        await app.state.cache.aclose()
        await aredis_client.aclose()
        redis_client.close()
        engine.dispose()

    # The latency drill's dependency runs on every request, so it is only wired when configured.
    drilled = settings.injected_latency_ms or settings.injected_cpu_ms
    drills = [Depends(inject_latency)] if drilled else []
    app = FastAPI(title="TutorMax service", lifespan=lifespan, dependencies=drills)
    app.state.settings = settings
    app.state.engine = engine
    app.state.session_factory = sessionmaker(engine, expire_on_commit=False)
    app.state.cache = Cache(redis_client, aredis_client, settings.cache_ttl_seconds)
    app.state.query_stats = query_stats
    app.state.id_sampler = IdSampler(settings.id_snapshot_seconds)
    if settings.fast_path and not drilled:
        # Added first, so it runs inside ResponseTimeMiddleware: its answers are timed too.
        app.add_middleware(CachedReads, state=app.state)
    app.add_middleware(ResponseTimeMiddleware)
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(RedisError, _redis_unavailable)
    for module in (health, tutors, students, sessions, admin, ids, performance):
        app.include_router(module.router)
    return app


app = create_app()
