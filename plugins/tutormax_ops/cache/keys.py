"""Clear keys by pattern, safely: the pattern must start with the configured prefix, keys are found
with `SCAN … MATCH … COUNT` and removed with `UNLINK` (freed in the background) page by page, so
neither the server nor this worker ever holds the whole keyspace at once."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from redis import Redis

_GLOB = set("*?[]\\")


class PatternError(ValueError):
    """The pattern is refused; the message names the `pattern` field and the rule."""


def validate_pattern(pattern: str, prefix: str) -> str:
    """A pattern that starts with `prefix` literally (so it can only match the cache's own keys)."""
    pattern = (pattern or "").strip()
    if not pattern or set(pattern) <= {"*"}:
        raise PatternError(f"pattern: {pattern!r} would match every key; give one starting with {prefix!r}")
    if _GLOB & set(prefix):
        raise PatternError(f"cache_clear.key_prefix {prefix!r} must not contain glob characters")
    if not pattern.startswith(prefix):
        raise PatternError(f"pattern: {pattern!r} must start with the configured prefix {prefix!r}")
    return pattern


@dataclass(frozen=True)
class ClearResult:
    pattern: str
    dry_run: bool
    matched: int  # keys SCAN returned (a key may come twice while the table rehashes)
    removed: int  # keys UNLINK actually removed (0 on a dry run)
    scan_calls: int
    seconds: float


def _batches(keys: list, size: int) -> Iterable[list]:
    for start in range(0, len(keys), size):
        yield keys[start : start + size]


def clear(client: Redis, pattern: str, *, dry_run: bool, scan_count: int, unlink_batch: int) -> ClearResult:
    """Walk the keyspace once with SCAN; UNLINK each page's matches (unless `dry_run`)."""
    started = time.perf_counter()
    cursor, matched, removed, calls = 0, 0, 0, 0
    while True:
        cursor, page = client.scan(cursor=cursor, match=pattern, count=scan_count)
        calls += 1
        matched += len(page)
        if page and not dry_run:
            for batch in _batches(page, unlink_batch):
                removed += int(client.unlink(*batch))
        if cursor == 0:
            break
    return ClearResult(pattern, dry_run, matched, removed, calls, round(time.perf_counter() - started, 3))
