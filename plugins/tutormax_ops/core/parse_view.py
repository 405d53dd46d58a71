"""The few settings a DAG file's shape needs while it is parsed, without pydantic or YAML.

The DAG processor parses every file every 30 s. Building the settings model there (importing
pydantic and YAML, reading and validating the config) cost about 110 ms per file in a fresh
interpreter. The view is built with the full model, so a bad config still fails the parse naming
the field, once per change of its sources (the YAML files, the `TUTORMAX_OPS__*` environment, the
settings code), and kept as a small JSON file under `.tutormax/parse_view/` named by those sources'
fingerprint. Later parses read that file. Where it cannot be written, the view is built every time.

Tasks never use it: they load the settings with the Airflow Variable (`load_settings(with_variable=True)`),
and check again what the params' schema already refused.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from tutormax_ops.core.paths import CONFIG_DIR, PROJECT_ROOT, STATE_DIR

ENV_PREFIX = "TUTORMAX_OPS__"
CONFIG_DIR_ENV = "TUTORMAX_OPS_CONFIG_DIR"
VIEW_DIR = STATE_DIR / "parse_view"
STALE_AFTER_S = 86_400
# The settings model's code: a changed default changes the view as a changed YAML value does.
_SETTINGS_CODE = tuple(
    PROJECT_ROOT / "plugins" / "tutormax_ops" / "core" / name
    for name in ("config.py", "loadtest_settings.py", "settings_base.py", "parse_view.py")
)


@dataclass(frozen=True)
class ParseView:
    cache_clear_prefix: str
    cache_warm_schedule: str
    warm_targets: tuple[str, ...]
    maintenance_schedule: str
    health_schedule: str
    loadtest_schedule: str
    loadtest_max_users: int
    loadtest_profiles: tuple[str, ...]
    loadtest_default_profile: str
    loadtest_run_task_timeout_s: int


def config_dir() -> Path:
    return Path(os.environ.get(CONFIG_DIR_ENV) or CONFIG_DIR)


def sources_fingerprint() -> str:
    """Changes whenever a source of the settings (YAML file, environment, settings code) does."""
    parts = [str(config_dir())]
    for path in [*sorted(config_dir().glob("*.yaml")), *_SETTINGS_CODE]:
        stat = path.stat()
        parts.append(f"{path}:{stat.st_mtime_ns}:{stat.st_size}")
    parts += sorted(f"{name}={value}" for name, value in os.environ.items() if name.startswith(ENV_PREFIX))
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:24]


@functools.cache
def _cached(fingerprint: str) -> ParseView:
    path = VIEW_DIR / f"{fingerprint}.json"
    try:
        values = json.loads(path.read_text())
        return ParseView(**{key: tuple(v) if isinstance(v, list) else v for key, v in values.items()})
    except (OSError, ValueError, TypeError):
        pass  # not built yet for these sources, or from an older ParseView: build it
    view = build_view()
    try:
        VIEW_DIR.mkdir(parents=True, exist_ok=True)
        scratch = path.with_suffix(f".{os.getpid()}.tmp")
        scratch.write_text(json.dumps(asdict(view)))
        os.replace(scratch, path)  # atomic: a concurrent parse reads the old file or the new one
        # Views of other sources a day old go; recent ones may be another process's environment.
        for stale in VIEW_DIR.glob("*.json"):
            if stale != path and time.time() - stale.stat().st_mtime > STALE_AFTER_S:
                stale.unlink(missing_ok=True)
    except OSError:
        pass  # a read-only checkout: the next parse builds the view again
    return view


def parse_view() -> ParseView:
    """The view for the current sources (read from its file, or built and stored)."""
    return _cached(sources_fingerprint())


def starts_with_regex(prefix: str) -> str:
    """A JSON-schema `pattern` for strings that start with `prefix` literally: its regex characters
    escaped the way both Python's `re` (the REST API's check) and JavaScript (the form's) read them."""
    return "^" + "".join(f"\\{char}" if char in r"\^$.|?*+()[]{}/" else char for char in prefix)


def build_view() -> ParseView:
    """From the validated settings (YAML and environment; never the Airflow Variable at parse time)."""
    from tutormax_ops.core.config import load_settings

    settings = load_settings()
    loadtest = settings.loadtest
    return ParseView(
        cache_clear_prefix=settings.cache_clear.key_prefix,
        cache_warm_schedule=settings.cache_warm.schedule,
        warm_targets=tuple(target.name for target in settings.cache_warm.targets),
        maintenance_schedule=settings.maintenance.schedule,
        health_schedule=settings.health.schedule,
        loadtest_schedule=loadtest.schedule,
        loadtest_max_users=loadtest.max_users,
        loadtest_profiles=tuple(sorted(loadtest.profiles)),
        loadtest_default_profile=loadtest.default_profile,
        loadtest_run_task_timeout_s=loadtest.run_task_timeout_s,
    )
