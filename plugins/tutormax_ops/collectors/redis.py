"""Redis cache statistics: hits, misses and hit rate (since start and over a window), evictions,
expirations, memory against maxmemory, and keys per configured pattern.

- `INFO` counters (`keyspace_hits`, `keyspace_misses`, `evicted_keys`, `expired_keys`) count since the
  server started or since `CONFIG RESETSTAT`. A rate over a period is the difference between two
  samples: pass the earlier `RedisSample` as `previous`. If any counter went backwards (restart or
  reset in between), the window is meaningless and its fields are None.
- The counters are per node: a replica shows 0 hits, and a cluster needs one call per node.
- Keys are counted with `SCAN … MATCH … COUNT`, never `KEYS`, which blocks the server for the whole
  keyspace.
- An unreachable server gives `connected=False` with the reason, never an exception: a cache outage is
  a finding to report, not a reason for the report to fail.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

if TYPE_CHECKING:
    from redis import Redis

DEFAULT_PATTERNS = ("tutormax:cache:*",)
DEFAULT_SCAN_LIMIT = 100_000
# Keys per SCAN call: large enough to keep round trips few, small enough that no call blocks the
# server noticeably (SCAN's cost per call is proportional to COUNT).
SCAN_BATCH = 1000


@dataclass(frozen=True)
class RedisSample:
    """The raw INFO counters at one moment; keep it to compute the next window's deltas."""

    keyspace_hits: int
    keyspace_misses: int
    evicted_keys: int
    expired_keys: int
    used_memory: int
    maxmemory: int
    taken_at: datetime


@dataclass(frozen=True)
class KeyCount:
    """Keys matching one pattern. When `truncated`, the scan stopped at the limit: `keys` is a floor."""

    pattern: str
    keys: int
    truncated: bool


@dataclass(frozen=True)
class CacheStats:
    connected: bool
    hits: int | None = None
    misses: int | None = None
    hit_rate_percent: float | None = None
    window_seconds: float | None = None
    window_hits: int | None = None
    window_misses: int | None = None
    window_hit_rate_percent: float | None = None
    evicted_keys: int | None = None
    expired_keys: int | None = None
    window_evicted_keys: int | None = None
    window_expired_keys: int | None = None
    used_memory_bytes: int | None = None
    maxmemory_bytes: int | None = None  # 0 means no limit
    memory_used_percent: float | None = None  # None when maxmemory is unlimited
    key_counts: tuple[KeyCount, ...] = ()
    sample: RedisSample | None = None
    window_note: str | None = None  # why the window fields are empty although `previous` was given
    error: str | None = None  # why `connected` is False


def hit_rate_percent(hits: int, misses: int) -> float | None:
    """hits / (hits + misses) in percent; None when there was no lookup at all."""
    lookups = hits + misses
    return None if lookups == 0 else 100.0 * hits / lookups


def take_sample(client: Redis) -> RedisSample:
    """One `INFO` call (its default sections include stats and memory)."""
    info = client.info()
    return RedisSample(
        keyspace_hits=int(info["keyspace_hits"]),
        keyspace_misses=int(info["keyspace_misses"]),
        evicted_keys=int(info["evicted_keys"]),
        expired_keys=int(info["expired_keys"]),
        used_memory=int(info["used_memory"]),
        maxmemory=int(info.get("maxmemory", 0)),
        taken_at=datetime.now(UTC),
    )


def count_keys(client: Redis, pattern: str, *, scan_limit: int = DEFAULT_SCAN_LIMIT) -> KeyCount:
    """Count keys matching `pattern` with SCAN MATCH COUNT.

    `scan_limit` bounds the keys the server examines (SCAN calls × COUNT), not the keys matched:
    MATCH filters after the server has walked the keyspace, so the work is set by the former.
    """
    batch = min(SCAN_BATCH, scan_limit)
    max_calls = math.ceil(scan_limit / batch)
    cursor, matched = 0, 0
    for _ in range(max_calls):
        cursor, keys = client.scan(cursor=cursor, match=pattern, count=batch)
        matched += len(keys)
        if cursor == 0:
            return KeyCount(pattern, matched, truncated=False)
    return KeyCount(pattern, matched, truncated=True)


def cache_stats(
    client: Redis,
    *,
    previous: RedisSample | None = None,
    patterns: Sequence[str] = DEFAULT_PATTERNS,
    scan_limit: int = DEFAULT_SCAN_LIMIT,
) -> CacheStats:
    """Cache statistics now, and over the window since `previous` when it is given."""
    try:
        current = take_sample(client)
        key_counts = tuple(count_keys(client, pattern, scan_limit=scan_limit) for pattern in patterns)
    except (RedisConnectionError, RedisTimeoutError) as error:
        return CacheStats(connected=False, error=f"{type(error).__name__}: {error}")
    window = _window(previous, current) if previous is not None else {}
    return CacheStats(
        connected=True,
        hits=current.keyspace_hits,
        misses=current.keyspace_misses,
        hit_rate_percent=hit_rate_percent(current.keyspace_hits, current.keyspace_misses),
        evicted_keys=current.evicted_keys,
        expired_keys=current.expired_keys,
        used_memory_bytes=current.used_memory,
        maxmemory_bytes=current.maxmemory,
        memory_used_percent=(
            100.0 * current.used_memory / current.maxmemory if current.maxmemory > 0 else None
        ),
        key_counts=key_counts,
        sample=current,
        **window,
    )


def _window(previous: RedisSample, current: RedisSample) -> dict[str, Any]:
    deltas = {
        "window_hits": current.keyspace_hits - previous.keyspace_hits,
        "window_misses": current.keyspace_misses - previous.keyspace_misses,
        "window_evicted_keys": current.evicted_keys - previous.evicted_keys,
        "window_expired_keys": current.expired_keys - previous.expired_keys,
    }
    if any(delta < 0 for delta in deltas.values()):
        # A restart or CONFIG RESETSTAT in between: no delta is meaningful.
        return {"window_note": "INFO counters went backwards since the previous sample (restart or reset)"}
    return {
        **deltas,
        "window_seconds": (current.taken_at - previous.taken_at).total_seconds(),
        "window_hit_rate_percent": hit_rate_percent(deltas["window_hits"], deltas["window_misses"]),
    }
