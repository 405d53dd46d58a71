"""Redis read-through cache with service-side hit/miss counters.

Request handlers read and invalidate on the event loop: a cache hit costs one Redis round trip
and no thread hop, and the stored JSON bytes go out as they are. Those commands go straight to
connections the cache keeps itself (made by the asyncio client's pool, so with its URL, password
and timeouts), not through the client's `execute_command`: its pool lock, connection checks, retry
wrapper and metrics hooks cost more CPU than the command (issue 16's profile). The synchronous
client serves the management endpoints (warm, clear, stats), which run in threads.

Hits and misses are counted by the service itself, in two Redis counters outside the
cache prefix (so clearing the cache does not reset them, and every uvicorn worker adds
to the same totals). Redis' own INFO keyspace_hits/misses would also count unrelated
clients of the same server.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from decimal import Decimal
from typing import Any

import redis
import redis.asyncio
from redis.exceptions import NoScriptError, RedisError, ResponseError

logger = logging.getLogger(__name__)

CACHE_PREFIX = "tutormax:cache:"
HITS_KEY = "tutormax:metrics:cache:hits"
MISSES_KEY = "tutormax:metrics:cache:misses"
ADMIN_OVERVIEW_KEY = f"{CACHE_PREFIX}admin:overview"
ADMIN_ANALYTICS_KEY = f"{CACHE_PREFIX}admin:analytics"
_DELETE_BATCH = 500

# GET plus the matching counter bump in one round trip (and atomically).
_GET_AND_COUNT = """
local value = redis.call('GET', KEYS[1])
if value then redis.call('INCR', KEYS[2]) else redis.call('INCR', KEYS[3]) end
return value
"""
_GET_AND_COUNT_SHA = hashlib.sha1(_GET_AND_COUNT.encode()).hexdigest()


def tutor_dashboard_key(tutor_id: int) -> str:
    return f"{CACHE_PREFIX}dashboard:tutor:{tutor_id}"


def tutor_feedback_key(tutor_id: int) -> str:
    return f"{CACHE_PREFIX}feedback:tutor:{tutor_id}"


def student_history_key(student_id: int) -> str:
    return f"{CACHE_PREFIX}student_history:{student_id}"


def tutors_list_key(subject: str | None) -> str:
    return f"{CACHE_PREFIX}tutors:list:{subject or 'all'}"


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def dumps(value: Any) -> bytes:
    return json.dumps(value, default=_json_default, separators=(",", ":")).encode()


class Cache:
    def __init__(self, client: redis.Redis, aclient: redis.asyncio.Redis, ttl_seconds: int) -> None:
        self.client = client
        self.aclient = aclient
        self.ttl_seconds = ttl_seconds
        # One slot per connection of the asyncio client's pool size, held around each command: a
        # request waits here for a free connection rather than open one more.
        self._slots = asyncio.Semaphore(aclient.connection_pool.max_connections)
        self._idle: list[redis.asyncio.Connection] = []
        self._open = 0

    @property
    def connections(self) -> int:
        """The request path's Redis connections open now (never more than the pool's size)."""
        return self._open

    async def _command(self, *args: Any) -> Any:
        async with self._slots:
            if self._idle:
                conn = self._idle.pop()
            else:
                conn = self.aclient.connection_pool.make_connection()
                self._open += 1
            try:
                await conn.send_command(*args)
                reply = await conn.read_response()
            except ResponseError:
                self._idle.append(conn)  # an error reply was read whole: the connection is in step
                raise
            except BaseException:
                # Broken, timed out or cancelled mid-command: a reply may still be on its way.
                self._open -= 1
                await conn.disconnect(nowait=True)
                raise
            self._idle.append(conn)
            return reply

    async def _get_and_count(self, key: str) -> bytes | None:
        keys = (key, HITS_KEY, MISSES_KEY)
        try:
            return await self._command("EVALSHA", _GET_AND_COUNT_SHA, len(keys), *keys)
        except NoScriptError:  # a restarted or flushed Redis: load it once, then as before
            await self._command("SCRIPT", "LOAD", _GET_AND_COUNT)
            return await self._command("EVALSHA", _GET_AND_COUNT_SHA, len(keys), *keys)

    async def aclose(self) -> None:
        while self._idle:
            self._open -= 1
            await self._idle.pop().disconnect()

    async def read_through(self, key: str, load: Callable[[], Awaitable[bytes]]) -> tuple[bytes, bool]:
        """Return ``(json_body, was_hit)``; on a miss, ``load()`` the body, store it with the TTL.

        Redis being down degrades to uncached reads rather than failing requests; /health
        reports the outage.
        """
        try:
            cached = await self._get_and_count(key)
        except RedisError:
            logger.warning("cache read failed for %s; serving from the database", key, exc_info=True)
            return await load(), False
        if cached is not None:
            return cached, True
        body = await load()
        try:
            await self._command("SET", key, body, "EX", self.ttl_seconds)
        except RedisError:
            logger.warning("cache write failed for %s", key, exc_info=True)
        return body, False

    def put(self, key: str, value: Any) -> None:
        """Store unconditionally (cache warming). Unlike read-through, Redis errors propagate."""
        self.client.set(key, dumps(value), ex=self.ttl_seconds)

    async def invalidate(self, keys: Iterable[str]) -> int:
        """UNLINK the given keys (non-blocking delete); returns how many existed."""
        keys = list(keys)
        if not keys:
            return 0
        try:
            return int(await self._command("UNLINK", *keys))
        except RedisError:
            # Entries then live until their TTL: acceptable staleness, not worth failing a write.
            logger.warning("cache invalidation failed for %s", keys, exc_info=True)
            return 0

    def clear(self, pattern: str) -> int:
        """SCAN for ``pattern`` and UNLINK in batches. Raises RedisError if Redis is down."""
        if not pattern.startswith(CACHE_PREFIX):
            raise ValueError(f"pattern must start with {CACHE_PREFIX!r}")
        deleted = 0
        batch: list[bytes] = []
        for key in self.client.scan_iter(match=pattern, count=1000):
            batch.append(key)
            if len(batch) >= _DELETE_BATCH:
                deleted += self.client.unlink(*batch)
                batch.clear()
        if batch:
            deleted += self.client.unlink(*batch)
        return deleted

    def ping(self) -> bool:
        try:
            return bool(self.client.ping())
        except RedisError:
            return False

    def stats(self) -> dict[str, Any]:
        try:
            hits, misses = (int(v or 0) for v in self.client.mget(HITS_KEY, MISSES_KEY))
            connected = True
        except RedisError:
            hits, misses, connected = 0, 0, False
        lookups = hits + misses
        return {
            "hits": hits,
            "misses": misses,
            "hit_rate_percent": round(100 * hits / lookups, 2) if lookups else 0.0,
            "connected": connected,
        }

    def reset_stats(self) -> None:
        self.client.delete(HITS_KEY, MISSES_KEY)
