"""The package's one registry of Assets, so producers and consumers name each exactly once."""

from __future__ import annotations

from airflow.sdk import Asset

SCHEMA_MIGRATED = Asset(
    name="tutormax_schema_migrated", uri="tutormax://tutormax_db/schema", group="tutormax"
)
CACHE_WARMED = Asset(name="tutormax_cache_warmed", uri="tutormax://tutormax_redis/cache", group="tutormax")
