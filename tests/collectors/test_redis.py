"""Redis collector against real servers: a private one (its counters start at zero, so figures
since start are exact) and the session's test Redis (a key prefix of its own, figures over a window)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tutormax_ops.collectors.redis import cache_stats, count_keys, take_sample
from tutormax_ops.devstack import stack as devstack


@pytest.fixture(scope="module")
def private_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[redis.Redis]:
    folder = tmp_path_factory.mktemp("private-redis")
    port = devstack.free_port()
    server = devstack.start_redis(folder, port, log_dir=folder)
    client = redis.Redis.from_url(server.url)
    yield client
    client.close()
    server.stop()


@pytest.fixture
def forbid_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """KEYS blocks the server for the whole keyspace: any call fails the test."""

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the collector called KEYS")

    monkeypatch.setattr(redis.Redis, "keys", refuse)


def lookups(client: redis.Redis, prefix: str, *, hits: int, misses: int) -> None:
    client.set(f"{prefix}present", "1")
    for _ in range(hits):
        assert client.get(f"{prefix}present") == b"1"
    for number in range(misses):
        assert client.get(f"{prefix}absent:{number}") is None


def test_hit_rate_since_start_is_exact(private_redis: redis.Redis, forbid_keys: None) -> None:
    private_redis.config_resetstat()  # our own server: the counters must start from a known zero
    lookups(private_redis, "tutormax:cache:", hits=7, misses=3)

    stats = cache_stats(private_redis)

    assert stats.connected
    assert (stats.hits, stats.misses) == (7, 3)
    assert stats.hit_rate_percent == 70.0
    assert stats.window_hits is None  # no previous sample, no window
    assert stats.maxmemory_bytes == 0 and stats.memory_used_percent is None
    assert stats.used_memory_bytes > 0


def test_hit_rate_over_a_window_is_exact(redis_url: str, forbid_keys: None) -> None:
    client = redis.Redis.from_url(redis_url)
    prefix = f"tutormax:test:{uuid.uuid4().hex}:"
    try:
        previous = take_sample(client)
        lookups(client, prefix, hits=13, misses=7)

        stats = cache_stats(client, previous=previous, patterns=(f"{prefix}*",))

        assert (stats.window_hits, stats.window_misses) == (13, 7)
        assert stats.window_hit_rate_percent == 65.0
        assert stats.window_seconds is not None and stats.window_seconds > 0
        assert stats.key_counts[0].keys == 1 and not stats.key_counts[0].truncated
        assert stats.sample is not None and stats.sample.taken_at > previous.taken_at
    finally:
        client.unlink(f"{prefix}present")
        client.close()


def test_no_lookups_in_the_window_gives_no_rate(private_redis: redis.Redis) -> None:
    previous = take_sample(private_redis)
    stats = cache_stats(private_redis, previous=previous, patterns=())
    assert (stats.window_hits, stats.window_misses, stats.window_hit_rate_percent) == (0, 0, None)


def test_expirations_and_evictions_are_counted(private_redis: redis.Redis) -> None:
    previous = take_sample(private_redis)
    private_redis.set("tutormax:cache:short", "1", px=20)
    time.sleep(0.1)
    assert private_redis.get("tutormax:cache:short") is None  # an access expires it lazily, if not yet done
    stats = cache_stats(private_redis, previous=previous, patterns=())
    assert stats.window_expired_keys == 1
    assert stats.window_evicted_keys == 0


def test_memory_against_maxmemory(private_redis: redis.Redis) -> None:
    private_redis.config_set("maxmemory", 64 * 1024 * 1024)
    try:
        stats = cache_stats(private_redis, patterns=())
        assert stats.maxmemory_bytes == 64 * 1024 * 1024
        assert stats.memory_used_percent == pytest.approx(
            100 * stats.used_memory_bytes / stats.maxmemory_bytes
        )
    finally:
        private_redis.config_set("maxmemory", 0)


def test_counter_reset_voids_the_window(private_redis: redis.Redis) -> None:
    lookups(private_redis, "tutormax:cache:", hits=2, misses=0)
    previous = take_sample(private_redis)
    private_redis.config_resetstat()
    stats = cache_stats(private_redis, previous=previous, patterns=())
    assert stats.window_hits is None and stats.window_hit_rate_percent is None
    assert "backwards" in (stats.window_note or "")


def test_keys_per_pattern_use_bounded_scan(private_redis: redis.Redis, forbid_keys: None) -> None:
    with private_redis.pipeline() as pipe:
        for number in range(250):
            pipe.set(f"tutormax:cache:tutor:{number}", "1")
        for number in range(40):
            pipe.set(f"tutormax:session:{number}", "1")
        pipe.execute()

    full = cache_stats(private_redis, patterns=("tutormax:cache:tutor:*", "tutormax:session:*"))
    assert [(count.keys, count.truncated) for count in full.key_counts] == [(250, False), (40, False)]

    bounded = count_keys(private_redis, "tutormax:cache:tutor:*", scan_limit=50)
    assert bounded.truncated
    assert bounded.keys < 250


def test_unreachable_redis_is_a_result_not_an_exception() -> None:
    # No retries: redis-py's default policy spends about 4 s retrying a refused connection.
    client = redis.Redis(host=devstack.LOOPBACK, port=devstack.free_port(), retry=Retry(NoBackoff(), 0))
    stats = cache_stats(client)
    assert not stats.connected
    assert "ConnectionError" in (stats.error or "")
    assert stats.hits is None and stats.key_counts == ()
