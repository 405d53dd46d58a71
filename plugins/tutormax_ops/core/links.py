"""Links to stored files through the plugin: emails carry a link to a run's report, not the report.

The plugin serves any file of the artifacts store at `/tutormax-ops/performance/reports/<path>`,
behind the Airflow login. An email needs that as an absolute URL: Airflow's own `[api] base_url`
(Airflow 3; `[webserver] base_url` on a configuration carried over from Airflow 2). Without either,
there is no link to give, and the email names where the file is stored instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import quote

if TYPE_CHECKING:
    from tutormax_ops.core.config import Settings

URL_PREFIX = "/tutormax-ops"  # where the plugin mounts its app
PAGE_PATH = "/performance"  # the Performance page, under URL_PREFIX
REPORTS_PATH = "reports"  # stored files, under the page
BASE_URL_OPTIONS = (("api", "base_url"), ("webserver", "base_url"))


def airflow_base_url() -> str | None:
    """The URL the Airflow UI and API are reached at, without a trailing slash, or None."""
    from airflow.configuration import conf

    for section, key in BASE_URL_OPTIONS:
        value = conf.get(section, key, fallback=None)
        if value:
            return value.rstrip("/")
    return None


def store_relative(settings: Settings, uri: str) -> str | None:
    """`uri`'s path inside the artifacts store, or None when it lies elsewhere."""
    from airflow.sdk import ObjectStoragePath

    base = str(ObjectStoragePath(settings.storage.artifacts_uri().rstrip("/"))).rstrip("/") + "/"
    stored = str(ObjectStoragePath(uri))
    return stored[len(base) :] if stored.startswith(base) and len(stored) > len(base) else None


def page_relative(settings: Settings, uri: str) -> str | None:
    """The link to a stored file relative to the Performance page, or None outside the store."""
    relative = store_relative(settings, uri)
    return None if relative is None else f"{REPORTS_PATH}/{quote(relative)}"


def stored_file_url(settings: Settings, uri: str) -> str | None:
    """The absolute URL of a stored file through the plugin, or None (no base URL, not in the store)."""
    base, relative = airflow_base_url(), page_relative(settings, uri)
    if base is None or relative is None:
        return None
    return f"{base}{URL_PREFIX}{PAGE_PATH}/{relative}"
