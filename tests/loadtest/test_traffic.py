"""A profile's traffic: its locustfile, user classes and tags checked with Locust's own loader
before any load, and the user classes and tags on Locust's command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtest.factories import SETTINGS, plan
from tutormax_ops.core.config import load_settings
from tutormax_ops.core.paths import LOCUST_DIR
from tutormax_ops.loadtest.runner import RECORDER, locust_commands, locust_env
from tutormax_ops.loadtest.traffic import (
    IDS_ENV,
    OPTIONS_ENV,
    THINK_TIME_ENV,
    LocustfileError,
    check_locustfile,
)


def with_profile(**profile: object):
    return load_settings(
        loadtest={"profiles": {"mine": {"users": 5, "spawn_rate": 5, "run_time_s": 30, **profile}}}
    )


def test_the_reference_profiles_keep_the_reference_locustfile() -> None:
    assert {name: p.locustfile for name, p in SETTINGS.loadtest.profiles.items()} == dict.fromkeys(
        SETTINGS.loadtest.profiles, "tutormax_locustfile.py"
    )
    assert check_locustfile("smoke", SETTINGS.loadtest) == ["StudentUser", "TutorUser", "AdminUser"]


def test_a_missing_locustfile_names_the_profile_and_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "gone.py"
    with pytest.raises(
        LocustfileError, match=rf"loadtest\.profiles\.mine\.locustfile: {missing} does not exist"
    ):
        check_locustfile("mine", with_profile(locustfile=str(missing)).loadtest)
    relative = LOCUST_DIR / "nope.py"
    with pytest.raises(
        LocustfileError, match=rf"loadtest\.profiles\.mine\.locustfile: {relative} does not exist"
    ):
        check_locustfile("mine", with_profile(locustfile="nope.py").loadtest)


@pytest.mark.parametrize(
    ("source", "error"),
    [
        ("x = (\n", "SyntaxError"),
        ("import not_installed_anywhere\n", "ModuleNotFoundError"),
        ("VALUE = 1\n", "it defines no User class"),
    ],
    ids=["syntax", "import", "no-user"],
)
def test_a_broken_locustfile_names_the_profile_the_path_and_the_error(
    tmp_path: Path, source: str, error: str
) -> None:
    broken = tmp_path / "broken.py"
    broken.write_text(source)
    with pytest.raises(
        LocustfileError, match=rf"mine\.locustfile: {broken} could not be loaded by Locust: .*{error}"
    ):
        check_locustfile("mine", with_profile(locustfile=str(broken)).loadtest)


def test_an_unknown_user_class_is_refused_with_the_classes_there_are() -> None:
    with pytest.raises(LocustfileError, match=r"mine\.user_classes: \['Nobody'\] are not in .*'StudentUser'"):
        check_locustfile("mine", with_profile(user_classes=["StudentUser", "Nobody"]).loadtest)


def test_a_tag_no_task_carries_is_refused_with_the_tags_there_are() -> None:
    routes = {"routes": [{"path": "/a", "tags": ["read"]}, {"path": "/b", "tags": ["write"]}]}
    mine = with_profile(locustfile="json_api_locustfile.py", options=routes, tags=["read", "raed"])
    with pytest.raises(
        LocustfileError,
        match=r"mine\.tags: \['raed'\] are on no task of \['JsonApiUser'\] .*its tags: \['read', 'write'\]",
    ):
        check_locustfile("mine", mine.loadtest)
    assert check_locustfile("mine", with_profile(locustfile="json_api_locustfile.py", options=routes,
                                                 tags=["write"]).loadtest) == ["JsonApiUser"]  # fmt: skip
    with pytest.raises(LocustfileError, match=r"mine\.tags: \['read'\] .*its tags: none"):
        check_locustfile("mine", with_profile(tags=["read"]).loadtest)  # the reference file has no tags


def test_the_example_locustfile_loads_with_its_config_and_refuses_routes_without_ids() -> None:
    routes = {"routes": [{"path": "/api/v1/items/{id}"}]}
    assert check_locustfile(
        "mine",
        with_profile(locustfile="json_api_locustfile.py", options=routes, ids={"values": [1, 2]}).loadtest,
    ) == ["JsonApiUser"]
    with pytest.raises(LocustfileError, match=r"route /api/v1/items/\{id\} needs ids"):
        check_locustfile("mine", with_profile(locustfile="json_api_locustfile.py", options=routes).loadtest)


def test_user_classes_and_tags_follow_the_locustfile_on_every_process(tmp_path: Path) -> None:
    chosen = plan(
        locustfile="/srv/team/locustfile.py", user_classes=("Reader",), tags=("read", "cheap"), processes=1
    )
    commands = dict(locust_commands(chosen, SETTINGS.loadtest, tmp_path, master_port=5557))
    for argv in commands.values():
        start = argv.index("-f")
        files = f"/srv/team/locustfile.py,{RECORDER}"  # the per-second recorder rides along
        assert argv[start + 1 : start + 6] == [files, "Reader", "-T", "read", "cheap"]
        assert argv[start + 6].startswith("--")  # nothing after the tags is read as a tag


def test_the_locustfile_gets_think_time_options_and_ids_but_no_airflow_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_TUTORMAX_DB", "postgresql://user:secret@db/x")
    settings = with_profile(think_time_s=[0.2, 0.4], options={"routes": []}, ids={"values": [7]})
    env = locust_env(plan(profile="mine"), settings.loadtest, tmp_path)
    assert (env[THINK_TIME_ENV], env[OPTIONS_ENV], env[IDS_ENV]) == (
        "0.2,0.4",
        '{"routes": []}',
        str(tmp_path / "ids.json"),
    )
    assert not any(key.startswith("AIRFLOW") for key in env)
    assert env["PYTHONPATH"].split(":")[0] == str(LOCUST_DIR)  # a locustfile elsewhere imports loop_clock
