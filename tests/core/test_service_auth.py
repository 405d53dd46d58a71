"""The `tutormax_api` connection's `auth` extra: each kind parsed, each mistake named by its field."""

from __future__ import annotations

import pytest

from tutormax_ops.core.service import ApiAuth


def test_each_kind_of_auth_is_read_from_the_extra() -> None:
    assert ApiAuth.from_extra({}).kind is None
    assert ApiAuth.from_extra({"auth": "bearer"}) == ApiAuth(kind="bearer", prefix="Bearer ")
    header = ApiAuth.from_extra({"auth": {"type": "header", "name": "X-API-Key"}})
    assert (header.kind, header.header, header.prefix) == ("header", "X-API-Key", "")
    login = ApiAuth.from_extra(
        {
            "auth": {
                "type": "login",
                "path": "/api/v1/login/access-token",
                "format": "json",
                "token_field": "data.token",
            }
        }
    )
    assert (login.kind, login.path, login.body_format, login.token_field) == (
        "login",
        "/api/v1/login/access-token",
        "json",
        "data.token",
    )


@pytest.mark.parametrize(
    ("auth", "field"),
    [
        ("basic", "extra.auth: type must be one of"),
        ({"type": "header"}, "extra.auth.name"),
        ({"type": "login"}, "extra.auth.path"),
        ({"type": "login", "path": "/login", "format": "xml"}, "extra.auth.format"),
    ],
)
def test_a_bad_auth_extra_names_its_field(auth: object, field: str) -> None:
    with pytest.raises(ValueError, match=f"connection 'tutormax_api' {field}"):
        ApiAuth.from_extra({"auth": auth})
