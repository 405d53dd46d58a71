"""Collectors: read-only probes of the service's PostgreSQL and Redis.

Each collector takes an open client (a psycopg 3 connection already limited by
`tutormax_ops.core.db.apply_session_limits`, or a Redis client) plus keyword thresholds, and returns
frozen dataclasses. Tasks turn those rows into tables with `to_dataframe`, so that every collector
is reported, stored and compared the same way.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas


def to_dataframe(rows: Sequence[Any]) -> pandas.DataFrame:
    """One column per dataclass field, one row per item (nested dataclasses become dicts).

    An empty sequence gives an empty frame: without a first row there is no type to read columns from.
    """
    import pandas  # about 1 s to import: only callers that build frames pay for it

    if not rows:
        return pandas.DataFrame()
    for row in rows:
        if not dataclasses.is_dataclass(row) or isinstance(row, type):
            raise TypeError(f"to_dataframe expects dataclass instances, got {type(row).__name__}")
    columns = [field.name for field in dataclasses.fields(rows[0])]
    return pandas.DataFrame([dataclasses.asdict(row) for row in rows], columns=columns)
