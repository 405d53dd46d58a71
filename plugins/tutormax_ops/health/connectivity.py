"""One check per Airflow connection the package uses: `SELECT 1`, `PING`, the service's health check
(`service.health_check`, the one the load-test guard uses too), SMTP handshake."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tutormax_ops.core.conn_ids import API_CONN_ID, DB_CONN_ID, REDIS_CONN_ID, RESULTS_CONN_ID, SMTP_CONN_ID
from tutormax_ops.core.notify import redact, smtp_handshake


@dataclass(frozen=True)
class CheckResult:
    conn_id: str
    check: str
    ok: bool
    detail: str
    elapsed_ms: float


def _timed(conn_id: str, check: str, probe: Callable[[], str]) -> CheckResult:
    started = time.perf_counter()
    try:
        detail, ok = probe(), True
    except Exception as error:  # a failed check is a result, reported with the others
        detail, ok = redact(f"{type(error).__name__}: {error}"), False
    return CheckResult(conn_id, check, ok, detail, round((time.perf_counter() - started) * 1000, 1))


def check_postgres(conn_id: str, *, timeout_ms: int = 5000) -> CheckResult:
    from tutormax_ops.core.db import connect

    def probe() -> str:
        with connect(
            conn_id, statement_timeout_ms=timeout_ms, lock_timeout_ms=timeout_ms, read_only=True
        ) as conn:
            value, version = conn.execute("SELECT 1, current_setting('server_version')").fetchone()
            if value != 1:
                raise RuntimeError(f"SELECT 1 returned {value!r}")
            return f"SELECT 1 ok, PostgreSQL {version}"

    return _timed(conn_id, "SELECT 1", probe)


def check_redis(conn_id: str) -> CheckResult:
    from airflow.providers.redis.hooks.redis import RedisHook

    def probe() -> str:
        client = RedisHook(redis_conn_id=conn_id).get_conn()
        try:
            if client.ping() is not True:
                raise RuntimeError("PING did not answer PONG")
            return f"PONG, Redis {client.info('server').get('redis_version')}"
        finally:
            client.close()

    return _timed(conn_id, "PING", probe)


def check_http_health(conn_id: str, *, timeout_s: float = 5) -> CheckResult:
    from tutormax_ops.core.config import load_settings
    from tutormax_ops.core.service import api_get, health_problem

    check = load_settings(with_variable=True).service.health_check

    def probe() -> str:
        # The connection's own auth and headers apply; the answer is judged as the guard judges it.
        response = api_get(check.path, timeout_s=timeout_s, conn_id=conn_id)
        problem = health_problem(check, response.status_code, response.text)
        if problem:
            raise RuntimeError(problem)
        return f"GET {check.path} {response.status_code}: {response.text[:200]}"

    return _timed(conn_id, f"GET {check.path}", probe)


def check_smtp(conn_id: str) -> CheckResult:
    return _timed(conn_id, "SMTP handshake", lambda: smtp_handshake(conn_id))


CHECKS: dict[str, Callable[[str], CheckResult]] = {
    DB_CONN_ID: check_postgres,
    RESULTS_CONN_ID: check_postgres,
    REDIS_CONN_ID: check_redis,
    API_CONN_ID: check_http_health,
    SMTP_CONN_ID: check_smtp,
}


class ConnectivityError(RuntimeError):
    """At least one connection did not answer."""


def run_check(conn_id: str) -> CheckResult:
    try:
        return CHECKS[conn_id](conn_id)
    except KeyError:
        raise ValueError(f"conn_id: no check for {conn_id!r}; known: {sorted(CHECKS)}") from None


def summarize_checks(results: list[dict], dag_run: Any) -> dict:
    """Log each check, record the run in the run registry (when tutormax_results answers), then raise
    `ConnectivityError` naming every failed connection."""
    from tutormax_ops.core.config import load_settings
    from tutormax_ops.core.registry import record_of, store_run

    # By index up to len(): iterating the mapped tasks' lazy XCom sequence asks for one item past the
    # end, which Airflow's client logs as "[error] XCom not found" in a successful run.
    results = [results[index] for index in range(len(results))]
    failed = [result for result in results if not result["ok"]]
    for result in results:
        state = "ok " if result["ok"] else "FAIL"
        print(
            f"{state} {result['conn_id']:<18} {result['check']:<15} {result['elapsed_ms']:>8} ms  {result['detail']}"
        )
    problems = "; ".join(f"{r['conn_id']} ({r['check']}): {r['detail']}" for r in failed)
    checked = f"{len(results) - len(failed)} of {len(results)} connections answer"
    record = record_of(
        dag_run,
        kind="connectivity",
        status="failed" if failed else "success",
        headline=f"{checked}: {problems}" if failed else checked,
        details={"results": results},
    )
    store_run(load_settings(with_variable=True), record, best_effort=True)
    if failed:
        raise ConnectivityError(problems)
    return {"checked": len(results), "failed": 0}
