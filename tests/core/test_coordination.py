from __future__ import annotations

import time

import psycopg
import pytest

from tutormax_ops.core.coordination import LockNotAcquired, exclusive, lock_holder

KEY = 7467867001


@pytest.fixture
def database_url(fresh_database) -> str:
    return fresh_database("coordination")


def test_second_session_waits_then_gives_up_naming_the_holder(database_url: str) -> None:
    with (
        psycopg.connect(database_url, autocommit=True, application_name="migration-run") as migration,
        psycopg.connect(database_url, autocommit=True) as maintenance,
    ):
        with exclusive(migration, KEY, wait_s=0):
            assert lock_holder(maintenance, KEY).application_name == "migration-run"
            started = time.monotonic()
            with (
                pytest.raises(LockNotAcquired, match="held by pid .* \\(migration-run"),
                exclusive(maintenance, KEY, wait_s=1.0),
            ):
                pytest.fail("the lock was granted twice")
            # It waited its 1 s, then gave up rather than queueing: the upper bound only catches a
            # wait that never ends, with room for a loaded machine's slow polls.
            assert 1.0 <= time.monotonic() - started < 30
        assert lock_holder(maintenance, KEY) is None
        with exclusive(maintenance, KEY, wait_s=0):  # wait_s=0: granted on its first try or raises
            assert lock_holder(migration, KEY).pid == maintenance.info.backend_pid


def test_lock_is_released_when_the_holder_disconnects(database_url: str) -> None:
    holder = psycopg.connect(database_url, autocommit=True)
    with psycopg.connect(database_url, autocommit=True) as other:
        holder.execute("SELECT pg_advisory_lock(%s)", (KEY,))
        assert lock_holder(other, KEY) is not None
        holder.close()
        with exclusive(other, KEY, wait_s=30):  # the server notices the disconnect; then it is granted
            assert lock_holder(other, KEY).pid == other.info.backend_pid


def test_keys_above_32_bits_do_not_collide(database_url: str) -> None:
    with (
        psycopg.connect(database_url, autocommit=True) as a,
        psycopg.connect(database_url, autocommit=True) as b,
        exclusive(a, KEY, wait_s=0),
    ):
        assert lock_holder(b, KEY + 2**32) is None
        with exclusive(b, KEY + 2**32, wait_s=0):
            assert lock_holder(b, KEY) is not None
