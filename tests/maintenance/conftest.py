"""A scratch database with a bloated, a clean and a weirdly named table."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from maintenance.catalog import WEIRD, make_table
from tutormax_ops.maintenance.common import TableRef


@pytest.fixture
def database_url(fresh_database) -> str:
    url = fresh_database("maintenance")
    make_table(url, TableRef("public", "bloated"), rows=8000, deleted_percent=50)
    make_table(url, TableRef("public", "clean"), rows=1000, deleted_percent=0)
    make_table(url, WEIRD, rows=2000, deleted_percent=40)
    return url


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(database_url, autocommit=True) as connection:
        yield connection
