"""The read-through cache against a real Redis: more concurrent requests than pooled connections."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import redis
import redis.asyncio

from tutormax_service.cache import CACHE_PREFIX, Cache

# A db number of its own on the shared test Redis (test_app.py uses 5).
REDIS_DB = 6
POOL_SIZE = 2
REQUESTS = 60


@pytest.fixture
def url(redis_url: str) -> str:
    return f"{redis_url.rsplit('/', 1)[0]}/{REDIS_DB}"


@pytest.fixture
def sync_client(url: str) -> Iterator[redis.Redis]:
    """A client of this module's own db, empty before and after the test."""
    client = redis.Redis.from_url(url)
    client.flushdb()
    try:
        yield client
    finally:
        client.flushdb()
        client.close()


def cache_of(url: str, sync_client: redis.Redis) -> Cache:
    """The cache as the service builds it, its async client on a pool of POOL_SIZE connections."""
    pool = redis.asyncio.ConnectionPool.from_url(url, max_connections=POOL_SIZE)
    return Cache(sync_client, redis.asyncio.Redis.from_pool(pool), ttl_seconds=30)


def test_requests_beyond_the_pool_size_wait_for_a_connection(url: str, sync_client: redis.Redis) -> None:
    cache = cache_of(url, sync_client)

    async def load() -> bytes:
        await asyncio.sleep(0.005)  # keeps many requests between their GET and their SET
        return b"[1]"

    async def burst() -> list[tuple[bytes, bool]]:
        try:
            # A plain pool raises "Too many connections" past its size; the cache must queue instead.
            return await asyncio.gather(
                *(cache.read_through(f"{CACHE_PREFIX}test:{i % 5}", load) for i in range(REQUESTS))
            )
        finally:
            assert 0 < cache.connections <= POOL_SIZE
            await cache.aclose()
            await cache.aclient.aclose()

    results = asyncio.run(burst())
    assert [body for body, _ in results] == [b"[1]"] * REQUESTS
    # Every lookup reached Redis (a failed one would have been served uncounted, from load()).
    stats = cache.stats()
    assert stats["hits"] + stats["misses"] == REQUESTS
    assert cache.connections == 0  # all closed


def test_a_flushed_script_cache_is_reloaded_and_counted(url: str, sync_client: redis.Redis) -> None:
    cache = cache_of(url, sync_client)

    async def load() -> bytes:
        return b"[2]"

    async def twice() -> list[tuple[bytes, bool]]:
        try:
            first = await cache.read_through(f"{CACHE_PREFIX}test:script", load)
            # What a Redis restart does to the scripts the cache's EVALSHA names.
            sync_client.script_flush()
            return [first, await cache.read_through(f"{CACHE_PREFIX}test:script", load)]
        finally:
            await cache.aclose()
            await cache.aclient.aclose()

    # The second read is a hit: NOSCRIPT did not send it to load() uncounted.
    assert asyncio.run(twice()) == [(b"[2]", False), (b"[2]", True)]
    assert (cache.stats()["hits"], cache.stats()["misses"]) == (1, 1)
