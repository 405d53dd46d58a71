"""Which failures a retry can heal, decided in one place.

Every task has `retries: 1` (`core.dag_policy`): a refused connection or a timeout may be gone two
minutes later. A bad setting, a bad param, a wrong password, a missing permission or a failed schema
migration will not be: a retry repeats the same failure and sends the same email again. Task bodies
(`*_step` functions) carry `@fail_fast`, which turns such an error into Airflow's non-retryable
failure, with the original message (which names the field) and the original error as its cause.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any, ParamSpec, TypeVar

from airflow.sdk.exceptions import AirflowException, AirflowFailException

P = ParamSpec("P")
R = TypeVar("R")

# libpq's own words for a connection that no retry can open: the credentials, the role, the database
# or the server's access rules are wrong (core.db re-raises these without the server's SQLSTATE).
_PG_CONFIG_FAILURES = (
    "password authentication failed",
    "no pg_hba.conf entry",
    "does not exist",
    "permission denied",
)
# SQLSTATE classes and codes that a retry cannot change: invalid authorization (28), database does
# not exist (3D000), insufficient privilege (42501).
_PG_CONFIG_SQLSTATES = ("28", "3D000", "42501")


class CannotHeal(RuntimeError):
    """Base of a plugin's own errors that no retry can heal (a failed migration, an invalid project)."""


class PermanentFailure(AirflowFailException):
    """A failure that a retry cannot heal: the task fails at once, its message is the cause's."""


class ReportedFailure(PermanentFailure):
    """A permanent failure whose own email already went out: the failure callback sends no other."""


def is_permanent(error: BaseException) -> bool:
    """A config, param or permission error, or a plugin's `CannotHeal`; not a refused connection or a
    timeout. Airflow's own exceptions (skip, fail, ...) are left to Airflow."""
    if isinstance(error, AirflowException):
        return False
    if isinstance(error, (CannotHeal, ValueError, PermissionError, FileNotFoundError, NotADirectoryError)):
        return True
    if _is_psycopg_error(error):
        sqlstate = getattr(error, "sqlstate", None) or ""
        if sqlstate.startswith(_PG_CONFIG_SQLSTATES):
            return True
        return sqlstate == "" and any(words in str(error) for words in _PG_CONFIG_FAILURES)
    return type(error).__name__ in ("AuthenticationError", "AuthorizationError")  # redis-py's


def _is_psycopg_error(error: BaseException) -> bool:
    import psycopg

    return isinstance(error, psycopg.Error)


def fail_fast(step: Callable[P, R]) -> Callable[P, R]:
    """Run a task body; re-raise an error that cannot heal as `PermanentFailure` (no retry)."""

    @functools.wraps(step)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return step(*args, **kwargs)
        except Exception as error:
            if is_permanent(error):
                raise PermanentFailure(f"{type(error).__name__}: {error}") from error
            raise

    return run


def notify_failure(context: Mapping[str, Any]) -> None:
    """`on_failure_callback` of every task: the failure email, unless the task already sent its own."""
    if isinstance(context.get("exception"), ReportedFailure):
        return
    from tutormax_ops.core.notify import notify_task_failure

    notify_task_failure(context)
