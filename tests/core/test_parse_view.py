"""The parse-time view of the settings: built from the validated settings, rebuilt when a source
changes, read from its file otherwise."""

from __future__ import annotations

import json
import os
import time

import pytest

from tutormax_ops.core import parse_view as view_module
from tutormax_ops.core.config import SettingsError, load_settings


@pytest.fixture
def view_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(view_module, "VIEW_DIR", tmp_path / "parse_view")
    view_module._cached.cache_clear()
    yield tmp_path / "parse_view"
    view_module._cached.cache_clear()


def test_the_view_is_the_settings_and_follows_the_environment(view_dir, monkeypatch) -> None:
    settings = load_settings()
    view = view_module.parse_view()
    assert view.loadtest_max_users == settings.loadtest.max_users
    assert view.warm_targets == tuple(target.name for target in settings.cache_warm.targets)
    assert view.cache_clear_prefix == settings.cache_clear.key_prefix
    (first,) = view_dir.glob("*.json")
    os.utime(first, (time.time() - view_module.STALE_AFTER_S - 1,) * 2)
    monkeypatch.setenv("TUTORMAX_OPS__LOADTEST__MAX_USERS", "1777")
    assert view_module.parse_view().loadtest_max_users == 1777
    assert len(list(view_dir.glob("*.json"))) == 1 and not first.exists()  # a day-old view goes


def test_a_later_parse_reads_the_stored_view(view_dir) -> None:
    view_module.parse_view()
    (stored,) = view_dir.glob("*.json")
    values = json.loads(stored.read_text())
    stored.write_text(json.dumps({**values, "loadtest_max_users": 12345}))
    view_module._cached.cache_clear()  # a new parsing process
    assert view_module.parse_view().loadtest_max_users == 12345


def test_a_bad_config_still_fails_the_parse_naming_the_field(view_dir, monkeypatch) -> None:
    monkeypatch.setenv("TUTORMAX_OPS__LOADTEST__MAX_USERS", "-5")
    with pytest.raises(SettingsError, match="loadtest.max_users"):
        view_module.parse_view()


def test_starts_with_regex_matches_the_prefix_literally() -> None:
    import re

    pattern = view_module.starts_with_regex("tutormax:cache.v2*")
    assert re.match(pattern, "tutormax:cache.v2*dashboard:*")
    assert not re.match(pattern, "tutormax:cacheXv2*dashboard:*")
    assert not re.match(pattern, "session:*")
