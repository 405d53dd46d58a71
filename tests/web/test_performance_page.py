"""The Performance page inside Airflow's own API server app (`create_app("core")`, the plugin loaded
by Airflow's plugin manager), over a seeded results history and a real artifacts folder.

Logged-in requests carry a real JWT. The browser test drives Debian's `chromium` with Playwright
(`executable_path`, no downloaded browser) against a uvicorn server; with `CI=true` it must run.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from page import load_page, logged_in_page, seed_history, serving
from support import required_chromium
from tutormax_ops.core.registry import DAG_OF_KIND
from tutormax_ops.devstack import stack as devstack

pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
PAGE = "/tutormax-ops/performance/"
RUNS, ENDPOINTS, WEEKS, TABLES = 40, 6, 6, 80
REPORT = "tutormax_db_maintenance/seed_w6/report.html"
TRAVERSALS = [
    "../../../../etc/passwd",
    "..%2F..%2F..%2Fetc%2Fpasswd",
    "%2e%2e/%2e%2e/etc/passwd",
    "%252e%252e/%252e%252e/etc/passwd",
    "tutormax_db_maintenance/../../outside.txt",
    "tutormax_db_maintenance/%2e%2e/%2e%2e/outside.txt",
    "/etc/passwd",
    "%2Fetc%2Fpasswd",
    "..\\..\\outside.txt",
    "tutormax_db_maintenance/./seed_w6/report.html",
    "tutormax_db_maintenance//seed_w6/report.html",
    "tutormax_db_maintenance/seed_w6/report.html%00.txt",
    "escape/secret.txt",  # a symlink that points outside the store
]


@dataclass(frozen=True)
class Site:
    client: object
    token: str
    app: object
    artifacts: Path

    def get(self, path: str, *, login: bool = True):
        headers = {"Authorization": f"Bearer {self.token}"} if login else {}
        return self.client.get(PAGE + path, headers=headers)


@pytest.fixture(scope="module")
def site(airflow_db: dict, fresh_database, tmp_path_factory) -> Iterator[Site]:
    from airflow.api_fastapi.app import create_app, get_auth_manager, purge_cached_app
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from fastapi.testclient import TestClient

    url = fresh_database("performance_page")
    root = tmp_path_factory.mktemp("store")
    artifacts = root / "artifacts"
    seed_history(url, runs=RUNS, endpoints=ENDPOINTS, weeks=WEEKS, tables=TABLES, artifacts=artifacts)
    (root / "outside.txt").write_text("outside the store")
    (artifacts / "escape").symlink_to(root)
    (root / "secret.txt").write_text("outside the store")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIRFLOW_CONN_TUTORMAX_RESULTS", json.dumps(devstack.postgres_connection(url)))
        patch.setenv("TUTORMAX_OPS__STORAGE__ARTIFACTS_BASE", artifacts.as_uri())
        app = create_app("core")
        token = get_auth_manager().generate_jwt(SimpleAuthManagerUser(username="ops", role="viewer"))
        with TestClient(app) as client:
            yield Site(client, token, app, artifacts)
        purge_cached_app()


@pytest.fixture(autouse=True)
def _seeded_artifacts(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    """The app finds the store from the settings at request time: the seeded one, not the per-test
    folder conftest gives every test."""
    monkeypatch.setenv("TUTORMAX_OPS__STORAGE__ARTIFACTS_BASE", site.artifacts.as_uri())


def test_the_nav_entry_opens_the_page(site: Site) -> None:
    """Airflow's own plugins endpoint, which the UI builds its navigation from, lists the view."""
    response = site.client.get("/api/v2/plugins", headers={"Authorization": f"Bearer {site.token}"})
    assert response.status_code == 200, response.text[:300]
    (plugin,) = [item for item in response.json()["plugins"] if item["name"] == "tutormax_ops"]
    views = [(view["name"], view["href"], view["destination"]) for view in plugin["external_views"]]
    assert views == [("Performance", PAGE, "nav")]


@pytest.mark.parametrize("path", ["data", "plotly.min.js", f"reports/{REPORT}"])
def test_anonymous_requests_get_401(site: Site, path: str) -> None:
    assert site.get(path, login=False).status_code == 401


def test_a_logged_out_browser_is_sent_from_the_page_to_the_login_page(site: Site) -> None:
    from urllib.parse import parse_qs, urlsplit

    from airflow.api_fastapi.app import get_auth_manager

    response = site.client.get(PAGE, follow_redirects=False)
    assert response.status_code == 307
    location = urlsplit(response.headers["location"])
    assert location.path == get_auth_manager().get_url_login()
    assert parse_qs(location.query)["next"] == [f"http://testserver{PAGE}"]  # back to the page afterwards


@pytest.mark.parametrize("path", ["", "data", "plotly.min.js", f"reports/{REPORT}"])
def test_logged_in_requests_get_200(site: Site, path: str) -> None:
    response = site.get(path)
    assert response.status_code == 200, response.text[:500]


def test_plotly_is_served_from_the_installed_package(site: Site) -> None:
    from importlib.resources import files

    response = site.get("plotly.min.js")
    assert response.content == (files("plotly") / "package_data" / "plotly.min.js").read_bytes()
    assert response.headers["content-type"].startswith("text/javascript")


def test_the_data_is_aggregated_per_endpoint_with_marks(site: Site) -> None:
    data = site.get("data").json()
    loadtests = data["loadtests"]
    assert loadtests["runs"] == len(loadtests["t"]) == RUNS
    assert [s["endpoint"] for s in loadtests["endpoints"]] == [
        f"GET /api/endpoint_{n:02d}" for n in range(1, 7)
    ]
    assert all(len(s["i"]) == len(s["p95"]) == len(s["rps"]) == RUNS for s in loadtests["endpoints"])
    assert loadtests["invalid"] == [36]  # run 37 (0-based 36): every 37th is seeded invalid
    regressed = {s["endpoint"]: s["regressed"] for s in loadtests["endpoints"] if s["regressed"]}
    assert regressed == {"GET /api/endpoint_02": [24]}  # run 25 (0-based 24), as seeded
    assert len(data["bloat"]) == 10 and all(len(table["t"]) == WEEKS for table in data["bloat"])
    assert len(data["rates"]["snapshots"]["t"]) in (RUNS, RUNS + 1)  # hourly snapshots, per day
    assert data["now"]["health_score"] is not None
    assert [alert["alert"] for alert in data["alerts"]] == ["api_p95_ms"]
    assert [item["status"] for item in data["checklist"]] == ["pass", "fail"]
    last = {run["kind"]: run for run in data["last_runs"]}
    assert list(last) == list(DAG_OF_KIND)  # every kind, in the registry's order
    assert (last["maintenance"]["run_id"], last["maintenance"]["report"]) == (
        f"seed_w{WEEKS}",
        f"reports/{REPORT}",
    )  # one link per run: its report
    assert (last["load_test"]["run_id"], last["load_test"]["status"]) == (f"seed_{RUNS}", "pass")
    assert last["migration"]["run_id"] is None and last["migration"]["dag_id"] == "tutormax_migrations"


def test_a_report_link_serves_the_file_sandboxed(site: Site) -> None:
    response = site.get(f"reports/{REPORT}")
    assert response.text == (site.artifacts / REPORT).read_text()
    assert response.headers["content-security-policy"] == "sandbox allow-scripts"


@pytest.fixture(scope="module")
def served(site: Site) -> Iterator[str]:
    """The same app behind uvicorn: raw paths reach it exactly as sent (test clients and browsers
    would normalise `..` away before sending)."""
    with serving(site.app) as base:
        yield base


def _raw_get(base: str, path: str, token: str | None) -> tuple[int, str]:
    from http.client import HTTPConnection
    from urllib.parse import urlsplit

    address = urlsplit(base)
    connection = HTTPConnection(address.hostname, address.port, timeout=30)
    try:
        connection.request("GET", path, headers={"Authorization": f"Bearer {token}"} if token else {})
        response = connection.getresponse()
        return response.status, response.read().decode(errors="replace")
    finally:
        connection.close()


@pytest.mark.parametrize("path", TRAVERSALS)
def test_a_report_link_cannot_escape_the_store(site: Site, served: str, path: str) -> None:
    status, body = _raw_get(served, f"{PAGE}reports/{path}", site.token)
    assert status == 404, (path, status, body[:200])
    assert "outside the store" not in body and "root:" not in body


def test_the_raw_request_path_reaches_the_app(site: Site, served: str) -> None:
    """The traversal test above is not vacuous: the same raw client gets the file and the 401."""
    assert _raw_get(served, f"{PAGE}reports/{REPORT}", site.token)[0] == 200
    assert _raw_get(served, f"{PAGE}reports/{REPORT}", None)[0] == 401


def test_the_page_renders_in_chromium_with_charts_and_no_console_errors(site: Site, served: str) -> None:
    executable = required_chromium()
    base = served
    with logged_in_page(base, site.token, executable) as page:
        load_page(page, base + PAGE)
        charts = page.eval_on_selector_all(
            ".chart",
            "nodes => nodes.map(n => [n.id, n.dataset.rendered === 'true', n.querySelectorAll('.main-svg').length])",
        )
        assert [chart_id for chart_id, *_ in charts] == [
            "chart-p95",
            "chart-rps",
            "chart-cache",
            "chart-slow",
            "chart-bloat",
            "chart-dead",
        ]
        assert all(rendered and svgs > 0 for _, rendered, svgs in charts), charts
        traces = page.evaluate("document.getElementById('chart-p95').data.map(t => t.name)")
        assert traces[:ENDPOINTS] == [f"GET /api/endpoint_{n:02d}" for n in range(1, 7)]
        assert "invalid run" in traces
        assert page.locator("[data-alert=api_p95_ms]").count() == 1
        assert page.locator("#checklist td.fail, #checklist span.fail").count() == 1
        assert page.locator("#runs a").count() == 2  # the maintenance and load-test reports
        assert page.locator("#verdict.bad").inner_text().startswith("Needs attention: 1 alert firing")
        never = page.locator("#runs tr[data-kind=migration]").inner_text()
        assert "never run" in never and "tutormax_migrations" in never
        assert page.problems == []
        anonymous = page.context.browser.new_context().new_page()
        anonymous.goto(base + PAGE)
        assert "/login" in anonymous.url and "tutormax-ops" in anonymous.url  # the login page, then back
