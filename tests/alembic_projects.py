"""A second Alembic project, written by the tests, with another `env.py` convention than the
reference service's: the URL comes in parts from separate environment variables (ACME_PG_HOST …),
the models from its own package `acme_models` (importable only through the configured PYTHONPATH),
and it runs from its own working directory."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path

PARTS_ENV = {
    "host": "ACME_PG_HOST",
    "port": "ACME_PG_PORT",
    "user": "ACME_PG_USER",
    "password": "ACME_PG_PASSWORD",
    "database": "ACME_PG_DATABASE",
}

_ENV_PY = """
import os
from alembic import context
from sqlalchemy import URL, create_engine, pool

from acme_models.tables import metadata  # the project's own package, via PYTHONPATH

def url():
    if context.config.get_main_option("sqlalchemy.url"):
        return context.config.get_main_option("sqlalchemy.url")
    return URL.create(
        "postgresql+psycopg",
        host=os.environ["ACME_PG_HOST"], port=int(os.environ["ACME_PG_PORT"]),
        username=os.environ["ACME_PG_USER"], password=os.environ["ACME_PG_PASSWORD"] or None,
        database=os.environ["ACME_PG_DATABASE"],
    )

if context.is_offline_mode():
    context.configure(url=url(), target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    engine = create_engine(url(), poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=metadata)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()
"""

_MODELS = """
import sqlalchemy as sa

metadata = sa.MetaData()
widgets = sa.Table(
    "acme_widgets", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("colour", sa.Text),
)
"""

_REVISION = '''
"""{message}"""
import sqlalchemy as sa
from alembic import op

revision = "{revision}"
down_revision = {down!r}
branch_labels = None
depends_on = None


def upgrade():
{upgrade}


def downgrade():
{downgrade}
'''

_REVISIONS = [
    (
        "a1",
        None,
        "create widgets",
        'op.create_table("acme_widgets", sa.Column("id", sa.Integer, primary_key=True), sa.Column("name", sa.Text, nullable=False))',
        'op.drop_table("acme_widgets")',
    ),
    (
        "a2",
        "a1",
        "add colour",
        'op.add_column("acme_widgets", sa.Column("colour", sa.Text))',
        'op.drop_column("acme_widgets", "colour")',
    ),
]
_SECOND_HEAD = ("b2", "a1", "a branch nobody merged", 'op.execute("SELECT 1")', 'op.execute("SELECT 1")')


@dataclass(frozen=True)
class Project:
    root: Path
    config: dict


def write_project(root: Path, *, second_head: bool = False) -> Project:
    """Write the project under `root` and return it with its `migrations.project` config."""
    (root / "src" / "acme_models").mkdir(parents=True)
    (root / "src" / "acme_models" / "__init__.py").write_text("")
    (root / "src" / "acme_models" / "tables.py").write_text(_MODELS)
    versions = root / "db" / "versions"
    versions.mkdir(parents=True)
    (root / "db" / "env.py").write_text(_ENV_PY)
    (root / "db" / "alembic.ini").write_text("[alembic]\nscript_location = %(here)s\n")
    for revision, down, message, upgrade, downgrade in _REVISIONS + ([_SECOND_HEAD] if second_head else []):
        (versions / f"{revision}.py").write_text(
            _REVISION.format(
                message=message,
                revision=revision,
                down=down,
                upgrade=textwrap.indent(upgrade, "    "),
                downgrade=textwrap.indent(downgrade, "    "),
            )
        )
    config = {
        "ini_path": str(root / "db" / "alembic.ini"),
        "working_dir": str(root),
        "pythonpath": [str(root / "src")],
        "url_delivery": "env_parts",
        "parts_env": PARTS_ENV,
    }
    return Project(root, config)
