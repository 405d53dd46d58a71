-- `alembic current` without Alembic: the revisions in the version table (none when it is missing).
SELECT version_num FROM alembic_version
