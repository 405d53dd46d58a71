"""The test service's settings, read from the environment at import as a typical FastAPI project's
are: the database URL is built from POSTGRES_* parts, and PROJECT_NAME and SECRET_KEY are required
(an Alembic env.py that imports them fails without them)."""

from __future__ import annotations

import os

from sqlalchemy import URL

PROJECT_NAME = os.environ["PROJECT_NAME"]
SECRET_KEY = os.environ["SECRET_KEY"]
TOKEN_MINUTES = int(os.environ.get("ACCESS_TOKEN_EXPIRE_MINUTES", "30"))


def database_url() -> URL:
    return URL.create(
        "postgresql+psycopg",
        host=os.environ["POSTGRES_SERVER"],
        port=int(os.environ.get("POSTGRES_PORT", "5432")),
        username=os.environ["POSTGRES_USER"],
        password=os.environ.get("POSTGRES_PASSWORD") or None,
        database=os.environ["POSTGRES_DB"],
    )
