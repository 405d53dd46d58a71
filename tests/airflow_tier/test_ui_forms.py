"""The trigger forms as an operator sees them, in Debian's chromium driven by Playwright (the page
test's launch: `executable_path`, headless, the UI's `_token` cookie from a real login): each DAG's
form opens with its params' defaults and its Trigger button enabled; the connectivity check
triggered from the form with its defaults succeeds."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from airflow_tier.airflow_api import AirflowApi, Unpaused, dag_ids, wait_for
from page import logged_in_page
from support import required_chromium

UI_TRIGGERED = "tutormax_smoke_connectivity"  # cheap: five connection checks, nothing written
# The React UI's first load on a busy 2-core machine (bundle, API calls), and a run of five checks.
UI_TIMEOUT_MS = 60_000
RUN_TIMEOUT_S = 300


@pytest.fixture(scope="module")
def page(airflow: AirflowApi) -> Iterator[Any]:
    executable = required_chromium()
    with logged_in_page(airflow.server.base_url, airflow.token, executable) as page:
        page.set_default_timeout(UI_TIMEOUT_MS)
        yield page


def open_trigger_form(page: Any, base_url: str, dag_id: str, params: dict) -> Any:
    page.goto(f"{base_url}/dags/{dag_id}")
    page.get_by_role("button", name="Trigger").first.click()
    dialog = page.get_by_role("dialog")
    dialog.wait_for()
    fields = dialog.locator("[name^=element_]")
    wait_for(
        lambda: fields.count() >= len(params), timeout_s=UI_TIMEOUT_MS / 1000, what=f"{dag_id}'s form fields"
    )
    return dialog


def shown_and_expected(dialog: Any, name: str, default: Any) -> tuple[Any, Any]:
    """What the form shows for a param, and what it should show for the param's default: a
    checkbox's state (ticked for true; unticked for false and for null), else the field's text (a
    list one item a line, null empty)."""
    field = dialog.locator(f"[name=element_{name}]")
    assert field.count() == 1, f"no single form field for param {name!r}"
    checkbox, shown = field.evaluate(
        "node => [node.type === 'checkbox', node.type === 'checkbox' ? node.checked : node.value]"
    )
    if checkbox:
        return shown, bool(default)
    if default is None:
        return shown, ""
    if isinstance(default, list):
        return shown, "\n".join(str(item) for item in default)
    return shown, str(default)


@pytest.mark.parametrize("dag_id", dag_ids())
def test_the_trigger_form_opens_with_the_defaults_and_can_be_submitted(
    airflow: AirflowApi, page: Any, dag_id: str
) -> None:
    params = {
        name: param["value"] for name, param in airflow.get(f"/dags/{dag_id}/details")["params"].items()
    }
    dialog = open_trigger_form(page, airflow.server.base_url, dag_id, params)
    pairs = {name: shown_and_expected(dialog, name, default) for name, default in params.items()}
    assert {name: shown for name, (shown, _) in pairs.items()} == {
        name: want for name, (_, want) in pairs.items()
    }
    trigger = dialog.get_by_role("button", name="Trigger")
    wait_for(trigger.is_enabled, timeout_s=30, what=f"{dag_id}'s Trigger button enabled with the defaults")
    page.keyboard.press("Escape")


def test_a_run_triggered_from_the_form_with_its_defaults_succeeds(
    airflow: AirflowApi, page: Any, unpaused: Unpaused
) -> None:
    before = {run["dag_run_id"] for run in airflow.runs(UI_TRIGGERED)}
    dialog = open_trigger_form(page, airflow.server.base_url, UI_TRIGGERED, {})
    dialog.get_by_role("button", name="Trigger").click()
    (run,) = wait_for(
        lambda: [
            run for run in airflow.runs(UI_TRIGGERED, run_type=["manual"]) if run["dag_run_id"] not in before
        ],
        timeout_s=60,
        what="the run the form created",
    )
    assert run["run_type"] == "manual" and run["logical_date"] is not None  # the form sends one
    finished = airflow.wait_finished(UI_TRIGGERED, run["dag_run_id"], timeout_s=RUN_TIMEOUT_S)
    assert finished["state"] == "success", airflow.task_states(UI_TRIGGERED, run["dag_run_id"])
