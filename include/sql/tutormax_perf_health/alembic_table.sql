SELECT to_regclass('alembic_version') IS NOT NULL AS present
