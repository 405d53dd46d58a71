"""A login-protected FastAPI service for the "your own service" tests, written for them: JWT login
(`POST /api/v1/login/access-token`, an OAuth2 password form), UUID primary keys, items read from
PostgreSQL and cached in Redis, and every route but the login behind `Authorization: Bearer <jwt>`,
the health check included. Settings come from the environment (jwt_settings.py).

Every request is appended to `JWT_REQUEST_LOG` as "<status> METHOD /path" after it is handled, so a
test sees what reached the service and what was refused. Served by uvicorn:
`uvicorn app:app --app-dir tests/byo_jwt_service`.
"""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import jwt
import jwt_settings
import psycopg
import redis
from fastapi import Depends, FastAPI, Form, HTTPException, Request
from fastapi.security import OAuth2PasswordBearer

ALGORITHM = "HS256"
CACHE_TTL_S = 300
LIBPQ_URL = jwt_settings.database_url().set(drivername="postgresql").render_as_string(hide_password=False)

app = FastAPI(title=jwt_settings.PROJECT_NAME)
cache = redis.Redis.from_url(os.environ["JWT_REDIS_URL"])
oauth2 = OAuth2PasswordBearer(tokenUrl="/api/v1/login/access-token")


@app.middleware("http")
async def record_request(request: Request, call_next: Any) -> Any:
    response = await call_next(request)
    with open(os.environ["JWT_REQUEST_LOG"], "a") as log:
        log.write(f"{response.status_code} {request.method} {request.url.path}\n")
    return response


def _query(statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(LIBPQ_URL) as conn:
        return conn.execute(statement, params).fetchall()


@app.post("/api/v1/login/access-token")
def login(username: Annotated[str, Form()], password: Annotated[str, Form()]) -> dict[str, str]:
    rows = _query(
        "SELECT id FROM users WHERE email = %s AND hashed_password = crypt(%s, hashed_password)",
        (username, password),
    )
    if not rows:
        raise HTTPException(status_code=400, detail="Incorrect email or password")
    expires = datetime.now(UTC) + timedelta(minutes=jwt_settings.TOKEN_MINUTES)
    token = jwt.encode({"sub": str(rows[0][0]), "exp": expires}, jwt_settings.SECRET_KEY, algorithm=ALGORITHM)
    return {"access_token": token, "token_type": "bearer"}


def current_user(token: Annotated[str, Depends(oauth2)]) -> uuid.UUID:
    try:
        claims = jwt.decode(token, jwt_settings.SECRET_KEY, algorithms=[ALGORITHM])
    except jwt.PyJWTError:
        raise HTTPException(status_code=401, detail="Could not validate credentials") from None
    return uuid.UUID(claims["sub"])


User = Annotated[uuid.UUID, Depends(current_user)]


@app.get("/api/v1/utils/health-check/")
def health_check(_: User) -> bool:
    return True


def _cached(key: str, load: Any) -> Any:
    """Read-through: Redis first, else `load()` stored for CACHE_TTL_S (a missing item, `null`, too)."""
    encoded = cache.get(key)
    if encoded is None:
        encoded = json.dumps(load())
        cache.set(key, encoded, ex=CACHE_TTL_S)
    return json.loads(encoded)


@app.get("/api/v1/items/")
def list_items(_: User) -> list[dict[str, str]]:
    def load() -> list[dict[str, str]]:
        rows = _query("SELECT id, title FROM items ORDER BY updated_at DESC, id LIMIT 20")
        return [{"id": str(row[0]), "title": row[1]} for row in rows]

    return _cached("jwt:items:first", load)


@app.get("/api/v1/items/{item_id}")
def read_item(item_id: uuid.UUID, _: User) -> dict[str, str]:
    def load() -> dict[str, str] | None:
        rows = _query("SELECT id, title FROM items WHERE id = %s", (item_id,))
        return {"id": str(rows[0][0]), "title": rows[0][1]} if rows else None

    item = _cached(f"jwt:item:{item_id}", load)
    if item is None:
        raise HTTPException(status_code=404, detail="Item not found")
    return item
