"""Params and the revision graph, from real `alembic heads` / `alembic history` output."""

from __future__ import annotations

import pytest

from tutormax_ops.migrations.plan import ancestors, ordered, parse_heads, parse_history, validate_params

HISTORY = """\
a3, b2 -> m4 (head) (mergepoint), merge
a2 -> a3, three
a1 -> b2, branch
a1 -> a2, two
<base> -> a1 (branchpoint), one
"""


def test_history_and_heads_parse_merges_and_branches() -> None:
    graph = parse_history(HISTORY)
    assert graph == {"m4": ("a3", "b2"), "a3": ("a2",), "b2": ("a1",), "a2": ("a1",), "a1": ()}
    assert parse_heads("a3 (head)\nb2 (effective head)\nINFO  [x] noise\n") == ["a3", "b2"]
    assert ordered(graph, ancestors(graph, ["m4"]) - ancestors(graph, ["a2"])) == ["a3", "b2", "m4"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"action": "drop"}, "params.action"),
        ({"target_revision": "1; DROP TABLE x"}, "params.target_revision"),
        ({"action": "downgrade", "target_revision": "base", "confirm": "head"}, "params.confirm"),
        ({"action": "downgrade", "target_revision": "0001"}, "params.confirm"),
    ],
)
def test_bad_params_name_their_field(params: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        validate_params(params)


def test_a_confirmed_downgrade_passes() -> None:
    run = validate_params(
        {"action": "downgrade", "target_revision": "0001", "confirm": "0001", "backup_first": False}
    )
    assert (run.action, run.target_revision, run.backup_first) == ("downgrade", "0001", False)
