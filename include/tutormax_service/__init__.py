"""TutorMax reference service: the realistic target for load tests, cache warming and DB maintenance DAGs.

FastAPI + SQLAlchemy 2 (sync, psycopg 3) + Redis read-through cache. Entry points:
``tutormax_service.app:create_app`` (ASGI factory), ``python -m tutormax_service.serve``,
``python -m tutormax_service.datagen``, ``python -m tutormax_service.seed`` (extensions, migrations
and data in one step) and ``tutormax_service.migrate`` (Alembic helpers).
"""
