"""Engine construction for the service (sized pool, psycopg 3 driver)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import Engine, create_engine

if TYPE_CHECKING:
    from tutormax_service.settings import Settings

_DRIVER_URL_PREFIX = "postgresql+psycopg://"


def normalize_url(url: str) -> str:
    """Point libpq-style URLs (``postgresql://``/``postgres://``) at the psycopg 3 driver.

    SQLAlchemy would otherwise pick psycopg2, which is not installed; callers (Airflow
    connections, test fixtures) naturally hand out plain libpq URLs.
    """
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return _DRIVER_URL_PREFIX + url[len(prefix) :]
    return url


def make_engine(settings: Settings) -> Engine:
    return create_engine(
        settings.database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=10,
        # Connections die on DB restarts/failovers; pre-ping keeps them from surfacing as 500s.
        pool_pre_ping=True,
        pool_recycle=1800,
        connect_args={
            # UTC makes date_trunc('day', ...) and the analytics window agree with the Python side.
            "options": "-c timezone=UTC",
            # Lets DB maintenance jobs tell the service's backends apart in pg_stat_activity.
            "application_name": "tutormax_service",
            "connect_timeout": 5,
        },
    )
