"""Production-like data volume, generated set-based inside PostgreSQL.

Every table is filled by one ``INSERT ... SELECT FROM generate_series`` driven by
``random()`` after ``setseed()``, so a run is reproducible for a given seed and never ships
rows one by one over the wire. Usage::

    python -m tutormax_service.datagen --database-url URL --days 30 [--sessions-per-day 30000]
        [--tutors 2000] [--students 40000] [--seed 42] [--feedback-ratio 0.7] [--append]
        [--skip-migrations]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from sqlalchemy import Connection, create_engine, func, pool, select, text

from tutormax_service import migrate
from tutormax_service.db import normalize_url
from tutormax_service.models import SUBJECTS, Student, Tutor, TutoringSession

logger = logging.getLogger(__name__)

FIRST_NAMES = [
    "Ava", "Liam", "Maya", "Noah", "Zoe", "Ethan", "Priya", "Mateo", "Chloe", "Omar",
    "Grace", "Lucas", "Amara", "Diego", "Hannah", "Kenji", "Sofia", "Elijah", "Leila", "Arjun",
]  # fmt: skip
LAST_NAMES = [
    "Nguyen", "Garcia", "Smith", "Patel", "Kim", "Johnson", "Okafor", "Rossi", "Cohen", "Silva",
    "Brown", "Haddad", "Tanaka", "Martin", "Lopez", "Ivanova", "Walker", "Chen", "Mensah", "Novak",
]  # fmt: skip
COMMENTS = [
    "Clear explanations, very patient.",
    "Helped me finally understand the homework.",
    "Great session, would book again.",
    "A bit rushed at the end.",
    "Started late but covered everything.",
    "Excellent practice problems.",
    "Hard to follow at times.",
    "Super encouraging and well prepared.",
]
CANCEL_REASONS = ["student_request", "tutor_unavailable", "scheduling_conflict", "illness", "technical_issue"]

_INSERT_TUTORS = text(
    """
    INSERT INTO tutors (full_name, email, subjects, bio, hourly_rate_cents, is_active, created_at)
    SELECT
        fn.names[1 + floor(random() * cardinality(fn.names))::int]
            || ' ' || ln.names[1 + floor(random() * cardinality(ln.names))::int],
        'tutor' || (CAST(:id_offset AS bigint) + g) || '@tutormax.example',
        -- The reference to g correlates the subquery, so each tutor draws its own 1-3 subjects
        -- (an uncorrelated subquery would run once and give every tutor the same set).
        ARRAY(
            SELECT subject FROM unnest(CAST(:subjects AS text[])) AS subject
            WHERE g IS NOT NULL ORDER BY random() LIMIT 1 + floor(random() * 3)::int
        ),
        'Tutoring since ' || (2010 + floor(random() * 15)::int),
        2500 + floor(random() * 81)::int * 100,
        random() < 0.95,
        CAST(:now AS timestamptz) - random() * interval '730 days'
    FROM generate_series(1, CAST(:count AS int)) AS g,
         (SELECT CAST(:first_names AS text[]) AS names) AS fn,
         (SELECT CAST(:last_names AS text[]) AS names) AS ln
    """
)

_INSERT_STUDENTS = text(
    """
    INSERT INTO students (full_name, email, grade_level, created_at)
    SELECT
        fn.names[1 + floor(random() * cardinality(fn.names))::int]
            || ' ' || ln.names[1 + floor(random() * cardinality(ln.names))::int],
        'student' || (CAST(:id_offset AS bigint) + g) || '@tutormax.example',
        3 + floor(random() * 14)::int,
        CAST(:now AS timestamptz) - random() * interval '365 days'
    FROM generate_series(1, CAST(:count AS int)) AS g,
         (SELECT CAST(:first_names AS text[]) AS names) AS fn,
         (SELECT CAST(:last_names AS text[]) AS names) AS ln
    """
)

# Exactly :per_day sessions on each of the generated days, in 15-minute slots 07:00-21:45 UTC.
# power(random(), 1.25) skews bookings towards popular tutors (the busiest gets ~4-5x the average).
# Past sessions are mostly completed; those after :now (the rest of today) are mostly scheduled.
_INSERT_SESSIONS = text(
    """
    INSERT INTO sessions
        (tutor_id, student_id, subject, scheduled_at, duration_minutes, status, cancelled_reason, created_at)
    SELECT
        d.tutor_id,
        d.student_id,
        t.subjects[1 + floor(d.subject_draw * cardinality(t.subjects))::int],
        d.scheduled_at,
        (ARRAY[30, 45, 60, 60, 60, 90, 120])[1 + floor(random() * 7)::int],
        o.status,
        CASE WHEN o.status = 'cancelled'
             THEN (CAST(:reasons AS text[]))[1 + floor(random() * cardinality(CAST(:reasons AS text[])))::int]
        END,
        d.scheduled_at - random() * interval '14 days'
    FROM (
        SELECT
            CAST(:start AS timestamptz)
                + ((g - 1) / CAST(:per_day AS int)) * interval '1 day'
                + interval '7 hours'
                + floor(random() * 60) * interval '15 minutes' AS scheduled_at,
            ids.tutor_ids[1 + floor(power(random(), 1.25) * cardinality(ids.tutor_ids))::int] AS tutor_id,
            ids.student_ids[1 + floor(random() * cardinality(ids.student_ids))::int] AS student_id,
            random() AS subject_draw,
            random() AS outcome_draw
        FROM generate_series(1, CAST(:count AS int)) AS g,
             (SELECT (SELECT array_agg(id ORDER BY id) FROM tutors) AS tutor_ids,
                     (SELECT array_agg(id ORDER BY id) FROM students) AS student_ids) AS ids
    ) AS d
    JOIN tutors AS t ON t.id = d.tutor_id
    CROSS JOIN LATERAL (
        SELECT CASE
            WHEN d.scheduled_at >= CAST(:now AS timestamptz)
                THEN CASE WHEN d.outcome_draw < 0.93 THEN 'scheduled' ELSE 'cancelled' END
            WHEN d.outcome_draw < 0.85 THEN 'completed'
            WHEN d.outcome_draw < 0.95 THEN 'cancelled'
            ELSE 'no_show'
        END AS status
    ) AS o
    """
)

# Ratings lean on a fixed per-tutor "quality" (a hash of the id), so tutors genuinely differ.
_INSERT_FEEDBACK = text(
    """
    INSERT INTO feedback (session_id, rating, comment, created_at)
    SELECT
        s.id,
        least(5, greatest(1, round(3.0 + 2.0 * ((s.tutor_id * 2654435761) % 1000) / 1000.0
                                   + (random() - 0.5) * 2.2)))::smallint,
        CASE WHEN random() < 0.35
             THEN (CAST(:comments AS text[]))[1 + floor(random() * cardinality(CAST(:comments AS text[])))::int]
        END,
        least(CAST(:now AS timestamptz),
              s.scheduled_at + s.duration_minutes * interval '1 minute' + random() * interval '48 hours')
    FROM sessions AS s
    WHERE s.id > CAST(:session_id_floor AS bigint)
      AND s.status = 'completed'
      AND random() < CAST(:ratio AS float8)
    """
)

# Recomputed from scratch (not incremented) so that --append runs stay exact too.
_REFRESH_TUTOR_RATINGS = text(
    """
    UPDATE tutors AS t
    SET rating_sum = agg.rating_sum, rating_count = agg.rating_count
    FROM (
        SELECT s.tutor_id, sum(f.rating) AS rating_sum, count(*) AS rating_count
        FROM feedback AS f JOIN sessions AS s ON s.id = f.session_id
        GROUP BY s.tutor_id
    ) AS agg
    WHERE agg.tutor_id = t.id
    """
)


# Secondary indexes and foreign keys of the bulk-loaded tables, as the catalog defines them.
_DEFERRABLE_STRUCTURES = text(
    """
    SELECT 'DROP INDEX ' || quote_ident(i.relname), pg_get_indexdef(i.oid)
    FROM pg_index AS x
    JOIN pg_class AS i ON i.oid = x.indexrelid
    WHERE x.indrelid IN ('sessions'::regclass, 'feedback'::regclass)
      AND NOT EXISTS (SELECT 1 FROM pg_constraint AS c WHERE c.conindid = x.indexrelid)
    UNION ALL
    SELECT format('ALTER TABLE %I DROP CONSTRAINT %I', c.conrelid::regclass, c.conname),
           format('ALTER TABLE %I ADD CONSTRAINT %I %s', c.conrelid::regclass, c.conname, pg_get_constraintdef(c.oid))
    FROM pg_constraint AS c
    WHERE c.contype = 'f' AND c.conrelid IN ('sessions'::regclass, 'feedback'::regclass)
    """
)


@contextmanager
def _deferred_indexes_and_foreign_keys(conn: Connection) -> Iterator[None]:
    """Drop secondary indexes and FKs for the load, then rebuild them from their catalog definitions.

    One sort-based index build and one set-based FK validation beat maintaining them row by
    row (about 4x faster for sessions). Only used after TRUNCATE, inside the load's
    transaction, so nobody ever sees the tables without them.
    """
    structures = conn.execute(_DEFERRABLE_STRUCTURES).all()
    for drop, _create in structures:
        conn.exec_driver_sql(drop)
    yield
    started = time.perf_counter()
    for _drop, create in structures:
        conn.exec_driver_sql(create)
    logger.info("rebuilt %d indexes/foreign keys in %.2f s", len(structures), time.perf_counter() - started)


def _seed_value(seed: int) -> float:
    """Map an integer seed onto setseed()'s [-1, 1] range (distinct for seeds below 2,000,001)."""
    return (seed % 2_000_001) / 1_000_000 - 1


def _max_id(conn: Connection, model: type[Tutor | Student | TutoringSession]) -> int:
    return conn.execute(select(func.coalesce(func.max(model.id), 0))).scalar_one()


def _timed_insert(
    conn: Connection, stats: dict[str, dict[str, float]], table: str, stmt: Any, **params: Any
) -> None:
    started = time.perf_counter()
    rows = conn.execute(stmt, params).rowcount
    seconds = time.perf_counter() - started
    stats[table] = {
        "rows": rows,
        "seconds": round(seconds, 3),
        "rows_per_second": round(rows / seconds) if seconds else 0,
    }
    logger.info(
        "%-9s %10d rows %8.2f s %12s rows/s", table, rows, seconds, f"{stats[table]['rows_per_second']:,}"
    )


def generate(
    database_url: str,
    *,
    days: int,
    sessions_per_day: int = 30_000,
    tutors: int = 2_000,
    students: int = 40_000,
    seed: int = 42,
    feedback_ratio: float = 0.7,
    append: bool = False,
    run_migrations: bool = True,
) -> dict[str, Any]:
    """Fill the service tables and return per-table and total row counts, timings and rates.

    Truncates the four tables first unless ``append``; ``run_migrations`` upgrades to head first.
    Sessions span the ``days`` UTC days ending today, so the tail of today is "upcoming".
    """
    if min(days, sessions_per_day, tutors, students) < 1 or not 0 <= feedback_ratio <= 1:
        raise ValueError("days, sessions_per_day, tutors and students must be >= 1; feedback_ratio in [0, 1]")
    if run_migrations:
        migrate.upgrade(database_url)
    now = dt.datetime.now(dt.UTC)
    start = dt.datetime.combine(now.date(), dt.time(), dt.UTC) - dt.timedelta(days=days - 1)
    names = {"first_names": FIRST_NAMES, "last_names": LAST_NAMES}
    stats: dict[str, dict[str, float]] = {}
    engine = create_engine(normalize_url(database_url), poolclass=pool.NullPool)
    started = time.perf_counter()
    try:
        with engine.begin() as conn:
            if append:
                offsets = {
                    model.__tablename__: _max_id(conn, model) for model in (Tutor, Student, TutoringSession)
                }
                # Existing rows make incremental index maintenance cheaper than full rebuilds.
                deferred: AbstractContextManager[None] = nullcontext()
            else:
                conn.execute(text("TRUNCATE feedback, sessions, students, tutors RESTART IDENTITY"))
                offsets = dict.fromkeys(("tutors", "students", "sessions"), 0)
                deferred = _deferred_indexes_and_foreign_keys(conn)
            conn.execute(text("SELECT setseed(:seed)"), {"seed": _seed_value(seed)})
            with deferred:
                _timed_insert(
                    conn, stats, "tutors", _INSERT_TUTORS,
                    count=tutors, id_offset=offsets["tutors"], subjects=list(SUBJECTS), now=now, **names,
                )  # fmt: skip
                _timed_insert(
                    conn, stats, "students", _INSERT_STUDENTS,
                    count=students, id_offset=offsets["students"], now=now, **names,
                )  # fmt: skip
                _timed_insert(
                    conn, stats, "sessions", _INSERT_SESSIONS,
                    count=days * sessions_per_day, per_day=sessions_per_day, start=start, now=now,
                    reasons=CANCEL_REASONS,
                )  # fmt: skip
                _timed_insert(
                    conn, stats, "feedback", _INSERT_FEEDBACK,
                    session_id_floor=offsets["sessions"], ratio=feedback_ratio, comments=COMMENTS, now=now,
                )  # fmt: skip
            conn.execute(_REFRESH_TUTOR_RATINGS)
        load_seconds = time.perf_counter() - started
        # Fresh statistics so the very first queries after a load get sensible plans.
        with engine.connect() as conn:
            conn.execute(text("ANALYZE tutors, students, sessions, feedback"))
            conn.commit()
    finally:
        engine.dispose()
    total_seconds = time.perf_counter() - started
    total_rows = sum(int(entry["rows"]) for entry in stats.values())
    result = {
        "days": days,
        "sessions_per_day": sessions_per_day,
        "seed": seed,
        "append": append,
        "tables": stats,
        "total_rows": total_rows,
        "load_seconds": round(load_seconds, 3),
        "total_seconds": round(total_seconds, 3),
        "rows_per_second": round(total_rows / load_seconds) if load_seconds else 0,
    }
    logger.info(
        "total     %10d rows %8.2f s %12s rows/s (+ ANALYZE: %.2f s total)",
        total_rows, load_seconds, f"{result['rows_per_second']:,}", total_seconds,
    )  # fmt: skip
    return result


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options shared by this CLI and ``python -m tutormax_service.seed``."""
    parser.add_argument(
        "--database-url",
        default=os.environ.get("TUTORMAX_SERVICE_DATABASE_URL"),
        help="defaults to $TUTORMAX_SERVICE_DATABASE_URL",
    )
    parser.add_argument("--days", type=int, required=True)
    parser.add_argument("--sessions-per-day", type=int, default=30_000)
    parser.add_argument("--tutors", type=int, default=2_000)
    parser.add_argument("--students", type=int, default=40_000)
    parser.add_argument(
        "--seed", type=int, default=42, help="same seed, same data (an --append run repeats its draws)"
    )
    parser.add_argument(
        "--feedback-ratio", type=float, default=0.7, help="share of completed sessions reviewed"
    )


def generate_options(args: argparse.Namespace) -> dict[str, Any]:
    """`generate()`'s keyword arguments from the options of `add_arguments`."""
    return {
        "days": args.days,
        "sessions_per_day": args.sessions_per_day,
        "tutors": args.tutors,
        "students": args.students,
        "seed": args.seed,
        "feedback_ratio": args.feedback_ratio,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tutormax_service.datagen", description=__doc__.splitlines()[0]
    )
    add_arguments(parser)
    parser.add_argument("--append", action="store_true", help="add to existing rows instead of truncating")
    parser.add_argument(
        "--skip-migrations", action="store_true", help="do not run `alembic upgrade head` first"
    )
    args = parser.parse_args(argv)
    if not args.database_url:
        parser.error("--database-url or TUTORMAX_SERVICE_DATABASE_URL is required")
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    result = generate(
        args.database_url,
        **generate_options(args),
        append=args.append,
        run_migrations=not args.skip_migrations,
    )
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
