"""Liveness of the service's dependencies."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

router = APIRouter(tags=["health"])


@router.get("/health")
def health(request: Request) -> JSONResponse:
    try:
        with request.app.state.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        database = True
    except SQLAlchemyError:
        database = False
    redis_ok = request.app.state.cache.ping()
    healthy = database and redis_ok
    return JSONResponse(
        {"status": "ok" if healthy else "degraded", "database": database, "redis": redis_ok},
        status_code=200 if healthy else 503,
    )
