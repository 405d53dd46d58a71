"""The AirflowPlugin. Airflow loads it through `plugins/tutormax_ops_plugin.py`; see that file.

It mounts the performance API (`tutormax_ops.web.api`) under `/tutormax-ops`. Every process that loads
plugins imports this module (scheduler, DAG processor, triggerer, task runners), but only the API
server reads `fastapi_apps`: the app, with FastAPI and Airflow's auth code, is built on that first
read rather than at import.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from airflow.plugins_manager import AirflowPlugin

from tutormax_ops.core.links import PAGE_PATH, URL_PREFIX

APP_NAME = "TutorMax Ops performance API"
# The Performance page (tutormax_ops.web.page), in the UI's navigation; the UI shows it in a frame.
PERFORMANCE_VIEW = {
    "name": "Performance",
    "href": f"{URL_PREFIX}{PAGE_PATH}/",
    "destination": "nav",
    "url_route": "tutormax-performance",
}


@cache
def fastapi_apps() -> list[dict[str, Any]]:
    from tutormax_ops.web.api import app

    return [{"app": app, "url_prefix": URL_PREFIX, "name": APP_NAME}]


class _BuiltOnRead:
    """A class attribute computed when read: `TutorMaxOpsPlugin.fastapi_apps` calls `fastapi_apps()`."""

    def __get__(self, instance: object, owner: type) -> list[dict[str, Any]]:
        return fastapi_apps()


class TutorMaxOpsPlugin(AirflowPlugin):
    name = "tutormax_ops"
    fastapi_apps = _BuiltOnRead()
    external_views = [PERFORMANCE_VIEW]
