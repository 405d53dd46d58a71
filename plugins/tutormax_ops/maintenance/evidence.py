"""How old the evidence is: since when this database's activity counters (index scans) have counted.

The age of "0 scans" is at most now − max(stats_reset, the first time this DAG observed this exact
database identity, the server's start without its statistics). Anything older is borrowed from another
database (a restored, recreated or failed-over one, or another database of this DAG's history).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from tutormax_ops.collectors.postgres.indexes import StatsOrigin
from tutormax_ops.core.db import load_sql


@dataclass(frozen=True)
class AgeBound:
    """One moment the counters cannot be older than, and where it comes from."""

    source: str
    since: datetime | None  # None: this source gives no bound (e.g. statistics never reset)
    note: str


@dataclass(frozen=True)
class EvidenceAge:
    """The counters' age (the youngest bound wins) and how it was derived, for the report."""

    identity: str
    age_s: float
    since: datetime
    decided_by: str
    bounds: tuple[AgeBound, ...]

    @property
    def days(self) -> float:
        return self.age_s / 86400


def identity_key(origin: StatsOrigin, dag_id: str) -> dict[str, Any]:
    return {
        "dag_id": dag_id,
        "system_identifier": origin.system_identifier or "",
        "database_oid": origin.database_oid,
        "database_name": origin.database,
    }


def first_observed(
    conn: psycopg.Connection, schema: str, origin: StatsOrigin, *, dag_id: str
) -> datetime | None:
    """When this DAG first observed exactly this identity (None: never before this run)."""
    try:
        row = conn.execute(
            load_sql("maintenance/identity_first_observed.sql", schema=schema), identity_key(origin, dag_id)
        ).fetchone()
    except (psycopg.errors.UndefinedTable, psycopg.errors.InvalidSchemaName):
        return None
    return row[0] if row else None


def record_observation(conn: psycopg.Connection, schema: str, origin: StatsOrigin, *, dag_id: str) -> None:
    """Remember that this DAG observed this identity at `origin.observed_at` (the first one is kept)."""
    with conn.transaction():
        conn.execute(load_sql("maintenance/identities_table.sql", schema=schema))
        conn.execute(
            load_sql("maintenance/identity_observed.sql", schema=schema),
            {**identity_key(origin, dag_id), "observed_at": origin.observed_at},
        )


def evidence_age(origin: StatsOrigin, earlier: datetime | None, *, now: datetime) -> EvidenceAge:
    """The youngest of the bounds: `earlier` is this identity's first observation in the history (None:
    this run is the first to see it, so the evidence starts now)."""
    observed = earlier or origin.observed_at
    bounds = (
        AgeBound(
            "pg_stat_database.stats_reset",
            origin.stats_reset,
            "this database's counters were reset then" if origin.stats_reset else "never reset: no bound",
        ),
        AgeBound(
            "first observed by this DAG",
            observed,
            "this identity's first run in the history"
            if earlier
            else "this run is the first to see this identity: a new, restored or recreated database",
        ),
        AgeBound(
            "server statistics restarted",
            origin.server_stats_since,
            "pg_stat_archiver.stats_reset: the server started without its statistics (crash, immediate "
            "shutdown, restore or first start) or they were reset",
        ),
    )
    decided = max((bound for bound in bounds if bound.since), key=lambda bound: bound.since)
    return EvidenceAge(
        identity=origin.identity,
        age_s=max((now - decided.since).total_seconds(), 0.0),
        since=decided.since,
        decided_by=decided.source,
        bounds=bounds,
    )


def age_for(
    results: psycopg.Connection | None, schema: str, origin: StatsOrigin | None, *, dag_id: str, now: datetime
) -> EvidenceAge | None:
    """The evidence's age from the history when it can be read; None without an identity (no DROP)."""
    if origin is None:
        return None
    earlier = first_observed(results, schema, origin, dag_id=dag_id) if results is not None else None
    return evidence_age(origin, earlier, now=now)
