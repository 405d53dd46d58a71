"""Pattern validation and SCAN + UNLINK clearing, against the test Redis server."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import redis

from tutormax_ops.cache.keys import PatternError, clear, validate_pattern

PREFIX = "tutormax:cache:"


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    """Database 7 of the test server, emptied key by key before and after (never a server-wide wipe)."""
    parts = urlsplit(redis_url)
    client = redis.Redis.from_url(parts._replace(path="/7").geturl())
    _empty(client)
    yield client
    _empty(client)
    client.close()


def _empty(client: redis.Redis) -> None:
    for batch in _pages(client):
        client.unlink(*batch)


def _pages(client: redis.Redis) -> Iterator[list[bytes]]:
    cursor = 0
    while True:
        cursor, page = client.scan(cursor=cursor, count=5000)
        if page:
            yield page
        if cursor == 0:
            return


def _fill(client: redis.Redis, template: str, count: int) -> None:
    with client.pipeline(transaction=False) as pipe:
        for number in range(count):
            pipe.set(template.format(number), b"x")
            if number % 10_000 == 9_999:
                pipe.execute()
        pipe.execute()


@pytest.mark.parametrize("pattern", ["*", "**", " * ", ""])
def test_a_pattern_that_matches_everything_is_refused(pattern: str) -> None:
    with pytest.raises(PatternError, match="pattern: .* every key"):
        validate_pattern(pattern, PREFIX)


@pytest.mark.parametrize("pattern", ["tutormax:*", "other:cache:*", "*tutormax:cache:*", "?utormax:cache:x"])
def test_a_pattern_outside_the_prefix_is_refused(pattern: str) -> None:
    with pytest.raises(PatternError, match="must start with the configured prefix"):
        validate_pattern(pattern, PREFIX)


def test_a_glob_in_the_prefix_itself_is_refused() -> None:
    with pytest.raises(PatternError, match="key_prefix"):
        validate_pattern("tutormax:*:x", "tutormax:*")


def test_clearing_100000_keys_removes_exactly_the_matching_ones(client: redis.Redis) -> None:
    _fill(client, PREFIX + "dashboard:tutor:{}", 100_000)
    _fill(client, PREFIX + "feedback:tutor:{}", 5_000)  # same prefix, other pattern
    _fill(client, "tutormax:metrics:dashboard:tutor:{}", 5_000)  # outside the prefix
    pattern = validate_pattern(PREFIX + "dashboard:*", PREFIX)

    counted = clear(client, pattern, dry_run=True, scan_count=1000, unlink_batch=500)
    assert counted.removed == 0 and counted.matched >= 100_000
    assert client.dbsize() == 110_000

    result = clear(client, pattern, dry_run=False, scan_count=1000, unlink_batch=500)
    assert result.removed == 100_000
    assert client.dbsize() == 10_000
    left = {key for page in _pages(client) for key in page}
    assert sum(key.startswith(b"tutormax:cache:feedback:tutor:") for key in left) == 5_000
    assert sum(key.startswith(b"tutormax:metrics:dashboard:tutor:") for key in left) == 5_000
    assert clear(client, pattern, dry_run=False, scan_count=1000, unlink_batch=500).removed == 0
