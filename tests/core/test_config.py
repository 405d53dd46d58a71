from __future__ import annotations

from pathlib import Path

import pytest

from tutormax_ops.core.config import CONFIG_DIR_ENV, SettingsError, load_settings


def test_shipped_yaml_carries_the_seed_targets_and_alerts() -> None:
    settings = load_settings()
    assert settings.targets.cache_hit_rate_percent == 80
    assert settings.targets.p95_api_ms == 200
    assert settings.targets.p95_query_ms == 100
    assert settings.targets.throughput_rps == 200
    assert settings.alerts.cache_hit_rate_percent == 70
    assert settings.alerts.p95_api_ms == 300
    assert settings.alerts.slow_query_rate_percent == 15
    assert settings.alerts.error_rate_percent == 1
    assert set(settings.loadtest.profiles) == {"smoke", "baseline", "stress", "soak"}
    assert settings.maintenance.schedule == "0 3 * * 0"


def test_environment_overrides_yaml(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUTORMAX_OPS__TARGETS__P95_API_MS", "250")
    monkeypatch.setenv("TUTORMAX_OPS__NOTIFY__RECIPIENTS", '["a@example.org", "b@example.org"]')
    settings = load_settings()
    assert settings.targets.p95_api_ms == 250
    assert settings.targets.p95_query_ms == 100  # untouched siblings survive the deep merge
    assert settings.notify.recipients == ("a@example.org", "b@example.org")


@pytest.mark.parametrize(
    ("env_name", "value", "field"),
    [
        ("TUTORMAX_OPS__TARGETS__P95_API_MS", "-5", "targets.p95_api_ms"),
        ("TUTORMAX_OPS__MAINTENANCE__SCHEDULE", "weekly-ish", "maintenance.schedule"),
        ("TUTORMAX_OPS__MAINTENANCE__PARALLEL_JOBS", "0", "maintenance.parallel_jobs"),
        ("TUTORMAX_OPS__NOTIFY__RECIPIENTS", '["not-an-address"]', "notify.recipients"),
        ("TUTORMAX_OPS__TARGETS__TYPO_FIELD", "1", "targets.typo_field"),
        ("TUTORMAX_OPS__LOADTEST__PROFILES__SMOKE__USERS", "many", "loadtest.profiles.smoke.users"),
    ],
)
def test_bad_value_names_the_field(
    monkeypatch: pytest.MonkeyPatch, env_name: str, value: str, field: str
) -> None:
    monkeypatch.setenv(env_name, value)
    with pytest.raises(SettingsError, match=field.replace(".", r"\.")):
        load_settings()


def test_profile_over_the_user_cap_is_refused() -> None:
    with pytest.raises(SettingsError, match="exceeds max_users"):
        load_settings(loadtest={"max_users": 50})


def test_profile_targets_override_global_targets() -> None:
    settings = load_settings(loadtest={"profiles": {"stress": {"targets": {"p95_api_ms": 500}}}})
    assert settings.targets_for("stress").p95_api_ms == 500
    assert settings.targets_for("smoke").p95_api_ms == 200
    with pytest.raises(SettingsError, match="no profile named 'nope'"):
        settings.targets_for("nope")


def test_a_users_config_folder_is_layered_over_the_shipped_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shipped = load_settings()
    (tmp_path / "10-site.yaml").write_text(
        "alerts:\n  p95_api_ms: 450\nloadtest:\n  host_allowlist: [api.internal]\n"
    )
    (tmp_path / "20-later.yaml").write_text("alerts:\n  error_rate_percent: 2.5\n")
    monkeypatch.setenv(CONFIG_DIR_ENV, str(tmp_path))
    layered = load_settings()
    assert layered.alerts.p95_api_ms == 450 and layered.alerts.error_rate_percent == 2.5  # theirs, key by key
    assert list(layered.loadtest.host_allowlist) == ["api.internal"]  # a list is replaced whole
    assert layered.loadtest.profiles == shipped.loadtest.profiles  # the rest is still the shipped defaults
    assert layered.alerts.cache_hit_rate_percent == shipped.alerts.cache_hit_rate_percent
    monkeypatch.setenv(CONFIG_DIR_ENV, str(tmp_path / "missing"))
    with pytest.raises(SettingsError, match="TUTORMAX_OPS_CONFIG_DIR=.*missing.*not a folder"):
        load_settings()


def test_airflow_variable_overrides_everything(airflow_db: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_VAR_TUTORMAX_OPS_CONFIG", '{"targets": {"p95_api_ms": 180}}')
    monkeypatch.setenv("TUTORMAX_OPS__TARGETS__P95_API_MS", "250")
    assert load_settings(with_variable=True).targets.p95_api_ms == 180
    assert load_settings().targets.p95_api_ms == 250


def test_airflow_variable_that_is_not_json_is_named(
    airflow_db: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_VAR_TUTORMAX_OPS_CONFIG", "{targets: ")
    with pytest.raises(SettingsError, match="Variable tutormax_ops_config: not valid JSON"):
        load_settings(with_variable=True)


def test_every_field_of_migrations_project_is_in_the_shipped_yaml_with_a_comment() -> None:
    import yaml

    from tutormax_ops.core.config import AlembicProject
    from tutormax_ops.core.paths import CONFIG_DIR

    text = (CONFIG_DIR / "tutormax.yaml").read_text()
    assert set(yaml.safe_load(text)["migrations"]["project"]) == set(AlembicProject.model_fields)
    start = text.index("  project:\n")
    section = text[start : text.index("  lock_timeout_ms:", start)]
    lines = section.splitlines()
    for name in AlembicProject.model_fields:
        at = next(i for i, line in enumerate(lines) if line.strip().startswith(f"{name}:"))
        nearby = [line for line in lines[max(0, at - 8) : at] if line.strip().startswith("#")]
        assert nearby or "#" in lines[at], f"migrations.project.{name} has no comment"
