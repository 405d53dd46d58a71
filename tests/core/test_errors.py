"""Which failures fail at once and which get their retry."""

from __future__ import annotations

import psycopg
import pytest
import redis

from tutormax_ops.cache.keys import PatternError
from tutormax_ops.core.config import SettingsError
from tutormax_ops.core.errors import (
    PermanentFailure,
    ReportedFailure,
    fail_fast,
    is_permanent,
    notify_failure,
)
from tutormax_ops.migrations.plan import BlockedByTransactions, PreflightError
from tutormax_ops.migrations.runner import AlembicError


@pytest.mark.parametrize(
    "error",
    [
        SettingsError("loadtest.max_users: must be positive"),
        PatternError("pattern: '*' would match every key"),
        ValueError("params.confirm: a downgrade runs only when confirm equals target_revision"),
        PermissionError("warm host 'api.internal' is not on loadtest.host_allowlist"),
        FileNotFoundError("migrations.project.ini_path: /x/alembic.ini does not exist"),
        AlembicError("alembic upgrade 0003 exited 1"),
        PreflightError("the project has 2 heads"),
        psycopg.OperationalError('connection failed: FATAL:  password authentication failed for user "x"'),
        redis.AuthenticationError("invalid username-password pair"),
    ],
)
def test_errors_that_cannot_heal(error: Exception) -> None:
    assert is_permanent(error)


@pytest.mark.parametrize(
    "error",
    [
        ConnectionRefusedError(111, "Connection refused"),
        TimeoutError("timed out"),
        ConnectionError("Redis connection 'tutormax_redis' at 127.0.0.1:1: refused"),
        psycopg.OperationalError("connection failed: connection refused. Is the server running?"),
        redis.ConnectionError("Error 111 connecting to 127.0.0.1:1. Connection refused."),
        BlockedByTransactions("1 transaction(s) open longer than migrations.max_transaction_age_s"),
    ],
)
def test_transient_faults_keep_their_retry(error: Exception) -> None:
    assert not is_permanent(error)


def test_fail_fast_keeps_the_message_and_the_cause() -> None:
    @fail_fast
    def step() -> None:
        raise ValueError("params.targets: ['nope'] are not in cache_warm.targets")

    with pytest.raises(PermanentFailure, match=r"params\.targets") as raised:
        step()
    assert isinstance(raised.value.__cause__, ValueError)

    @fail_fast
    def refused() -> None:
        raise ConnectionRefusedError(111, "Connection refused")

    with pytest.raises(ConnectionRefusedError):
        refused()


def test_a_reported_failure_is_not_emailed_again(monkeypatch) -> None:
    sent = []
    monkeypatch.setattr("tutormax_ops.core.notify.notify_task_failure", sent.append)
    notify_failure({"exception": ReportedFailure("emailed with the backup's path")})
    assert sent == []
    notify_failure({"exception": PermanentFailure("ValueError: params.confirm")})
    assert len(sent) == 1
