"""Make a TutorMax database ready in one command: extensions, schema, demo data.

    python -m tutormax_service.seed --database-url URL --days 2 [--sessions-per-day N]
        [--tutors N] [--students N] [--seed 42] [--feedback-ratio 0.7] [--only-if-empty]

1. ``CREATE EXTENSION IF NOT EXISTS`` pg_stat_statements and pgstattuple (a superuser, the first
   time: the collectors read query statistics and exact bloat through them);
2. ``alembic upgrade head``;
3. the data generator (``tutormax_service.datagen``): it replaces the four tables' rows, unless
   ``--only-if-empty`` finds tutors already there.

The same command seeds the demo's database (`make demo`), the tests' service database and
docker compose's one-shot ``tutormax-init``. The last line printed is a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy import make_url

from tutormax_service import datagen, migrate
from tutormax_service.db import normalize_url

EXTENSIONS = ("pg_stat_statements", "pgstattuple")


def libpq_url(database_url: str) -> str:
    """A SQLAlchemy or libpq URL as the libpq URL psycopg takes."""
    url = make_url(normalize_url(database_url)).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def create_extensions(database_url: str) -> dict[str, str]:
    """Create the extensions the collectors use (if missing); return {name: installed version}."""
    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        for extension in EXTENSIONS:
            conn.execute(sql.SQL("CREATE EXTENSION IF NOT EXISTS {}").format(sql.Identifier(extension)))
        rows = conn.execute(
            "SELECT extname, extversion FROM pg_extension WHERE extname = ANY(%s)", (list(EXTENSIONS),)
        ).fetchall()
    return dict(rows)


def tutor_count(database_url: str) -> int:
    with psycopg.connect(libpq_url(database_url)) as conn:
        return conn.execute("SELECT count(*) FROM tutors").fetchone()[0]


def seed(database_url: str, *, only_if_empty: bool = False, **generate_options: Any) -> dict[str, Any]:
    """Extensions, migrations, then data (see the module doc); return a summary of each step."""
    extensions = create_extensions(database_url)
    migrate.upgrade(database_url)
    summary: dict[str, Any] = {
        "extensions": extensions,
        "revision": migrate.current_revision(database_url),
    }
    existing = tutor_count(database_url) if only_if_empty else 0
    if existing:
        summary["data"] = f"kept: {existing} tutors already loaded"
    else:
        summary["data"] = datagen.generate(database_url, run_migrations=False, **generate_options)
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tutormax_service.seed", description=__doc__.splitlines()[0]
    )
    datagen.add_arguments(parser)
    parser.add_argument(
        "--only-if-empty",
        action="store_true",
        help="keep the rows of a database that already has tutors (a restarted compose stack)",
    )
    args = parser.parse_args(argv)
    if not args.database_url:
        parser.error("--database-url or TUTORMAX_SERVICE_DATABASE_URL is required")
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    summary = seed(args.database_url, only_if_empty=args.only_if_empty, **datagen.generate_options(args))
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
