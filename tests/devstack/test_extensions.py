"""The self-started PostgreSQL has the extensions projects' migrations commonly create."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import sql

from tutormax_ops.devstack import stack as devstack
from tutormax_ops.devstack.postgres import COMMON_EXTENSIONS


@pytest.mark.server_variant
def test_every_common_extension_can_be_created(stack: devstack.Stack, fresh_database) -> None:
    if not any(managed.name == "postgres" for managed in stack.processes):
        pytest.skip("TUTORMAX_DB_URL names an external server: its extensions are its own")
    url = fresh_database("common_extensions")
    with psycopg.connect(url, autocommit=True) as conn:
        for extension in COMMON_EXTENSIONS:
            conn.execute(sql.SQL("CREATE EXTENSION {}").format(sql.Identifier(extension)))
        installed = {name for (name,) in conn.execute("SELECT extname FROM pg_extension")}
        # Each one works, not only loads: a UUID, a digest, a case-blind compare, a trigram similarity.
        uuid_v4, digest, same, similarity, path_ok, plain = conn.execute(
            "SELECT uuid_generate_v4()::text, encode(digest('x', 'sha256'), 'hex'),"
            " 'ABC'::citext = 'abc'::citext, similarity('migration', 'migrations'),"
            " 'a.b.c'::ltree <@ 'a.b'::ltree, unaccent('Crème brûlée')"
        ).fetchone()
    assert installed >= set(COMMON_EXTENSIONS)
    assert len(uuid_v4) == 36 and uuid_v4[14] == "4"
    assert digest == "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"
    assert same is True and path_ok is True
    assert 0.5 < similarity < 1
    assert plain == "Creme brulee"
