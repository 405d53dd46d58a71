"""The Performance page inside the Airflow UI, served by the plugin's FastAPI app under
`/tutormax-ops/performance/`, behind the Airflow login (`get_user`: the UI's cookie or a Bearer JWT).
A logged-out browser that opens the page itself is sent to the login page (and back afterwards);
every other route answers 401, as an API does.

- `/`: the page (a static template; it fetches `data` and draws the charts with Plotly);
- `/data`: the health score, open alerts with runbooks, the checklist, the newest run of each kind
  from the run registry (its verdict and report link), and the trend series, each aggregated by one
  SQL statement into JSON text (`include/sql/tutormax_perf_health/page_*.sql`);
- `/plotly.min.js`: Plotly's bundle from the installed `plotly` package, so no internet is needed;
- `/reports/{path}`: a file of the artifacts store, for the report links. A path with an empty,
  `.` or `..` segment, a backslash, a `%` (an encoded variant left after decoding), a NUL, or one
  that resolves outside the store is a 404, like a missing file.
"""

from __future__ import annotations

import mimetypes
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from airflow.api_fastapi.core_api.security import bearer_scheme, get_user
from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.security import HTTPAuthorizationCredentials
from psycopg import sql

from tutormax_ops.core.config import Settings, load_settings
from tutormax_ops.core.links import PAGE_PATH, page_relative
from tutormax_ops.core.registry import DAG_OF_KIND

HISTORY_DAYS = 366
PARTS = ("now", "alerts", "checklist", "loadtests", "rates", "bloat")  # include/sql/…/page_<part>.sql
TOP_TABLES = 10
# Stored reports run in a sandbox: their scripts (Locust's report has some) get an opaque origin and
# cannot read the Airflow session or call its API.
REPORT_CSP = "sandbox allow-scripts"
FORBIDDEN_IN_PATH = ("\\", "%", "\x00")


def _settings() -> Settings:
    return load_settings()


SettingsDep = Annotated[Settings, Depends(_settings)]
router = APIRouter(prefix=PAGE_PATH)
api = APIRouter(dependencies=[Depends(get_user)])


async def _user_or_login(
    request: Request,
    bearer_credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> Any:
    """`get_user`, except that a request without a valid login is redirected to the auth manager's
    login page, which brings the user back here."""
    from airflow.api_fastapi.app import get_auth_manager

    try:
        return await get_user(request, None, bearer_credentials)
    except HTTPException as error:
        if error.status_code != status.HTTP_401_UNAUTHORIZED:
            raise
        login = get_auth_manager().get_url_login(next_url=str(request.url))
        raise HTTPException(status.HTTP_307_TEMPORARY_REDIRECT, headers={"Location": login}) from None


@router.get("/", response_class=HTMLResponse, dependencies=[Depends(_user_or_login)])
def performance_page() -> HTMLResponse:
    from tutormax_ops.core.reports import render

    return HTMLResponse(render("performance_page.html", history_days=HISTORY_DAYS))


@api.get("/plotly.min.js")
def plotly_bundle() -> FileResponse:
    from importlib.resources import files

    bundle = files("plotly") / "package_data" / "plotly.min.js"
    return FileResponse(
        str(bundle), media_type="text/javascript", headers={"Cache-Control": "private, max-age=86400"}
    )


@api.get("/data")
def performance_data(settings: SettingsDep) -> Response:
    """One JSON document. Each part is one statement's JSON text; they run as scalar subqueries of a
    single SELECT (one round trip), and are joined without being parsed again."""
    import json

    import psycopg

    from tutormax_ops.core.storage import results_db
    from tutormax_ops.health.results import rows

    schema = settings.storage.results_schema
    params = {"since": datetime.now(UTC) - timedelta(days=HISTORY_DAYS), "top": TOP_TABLES}
    try:
        with results_db(settings, read_only=True) as conn:
            values = conn.execute(_parts_statement(schema), params).fetchone()
            last_runs = rows(conn, "page_last_runs", schema, {"kinds": list(DAG_OF_KIND)})
    except psycopg.errors.UndefinedTable:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no history yet: run tutormax_perf_health") from None
    parts = dict(zip(PARTS, values, strict=True))
    parts["last_runs"] = json.dumps(_last_runs(settings, last_runs))
    body = "{" + ",".join(f"{json.dumps(key)}:{value}" for key, value in parts.items()) + "}"
    return Response(body, media_type="application/json")


def _parts_statement(schema: str) -> sql.Composed:
    """SELECT (<page_now.sql>) AS now, (<page_alerts.sql>) AS alerts, …"""
    from tutormax_ops.core.db import load_sql
    from tutormax_ops.health.results import SQL_FOLDER

    columns = [
        sql.SQL("(\n{}\n) AS {}").format(
            load_sql(f"{SQL_FOLDER}/page_{name}.sql", schema=schema), sql.Identifier(name)
        )
        for name in PARTS
    ]
    return sql.SQL("SELECT {}").format(sql.SQL(", ").join(columns))


def _last_runs(settings: Settings, found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The newest run of each kind, with one link: its report (the run's other files sit next to it,
    in the folder the report names); a kind never run names the DAG that fills it."""
    from airflow.sdk import ObjectStoragePath

    runs = []
    for run in found:
        report = run["report_uri"]
        href = page_relative(settings, report) if report else None
        runs.append(
            {
                "kind": run["kind"],
                "dag_id": run["dag_id"] or DAG_OF_KIND[run["kind"]],
                "run_id": run["run_id"],
                "run_type": run["run_type"],
                "started_at": run["started_at"].isoformat() if run["started_at"] else None,
                "status": run["status"],
                "headline": run["headline"],
                "report": href if href and ObjectStoragePath(report).is_file() else None,
            }
        )
    return runs


@api.get("/reports/{path:path}")
def report_file(path: str, settings: SettingsDep) -> Response:
    from airflow.sdk import ObjectStoragePath

    segments = path.split("/")
    if any(segment in ("", ".", "..") for segment in segments) or any(
        bad in path for bad in FORBIDDEN_IN_PATH
    ):
        raise HTTPException(status.HTTP_404_NOT_FOUND)
    base = ObjectStoragePath(settings.storage.artifacts_uri().rstrip("/"))
    target = base.joinpath(*segments)
    if base.protocol == "file":
        from pathlib import Path

        root = Path(base.path).resolve()
        if not Path(target.path).resolve().is_relative_to(root):
            raise HTTPException(status.HTTP_404_NOT_FOUND)
    if not target.is_file():
        raise HTTPException(status.HTTP_404_NOT_FOUND)
    media_type = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
    return Response(
        target.read_bytes(),
        media_type=media_type,
        headers={"Content-Security-Policy": REPORT_CSP, "X-Content-Type-Options": "nosniff"},
    )


router.include_router(api)
