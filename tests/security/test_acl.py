"""Scopes and the endpoint table: who may do what to which model."""

from __future__ import annotations

import pytest

from maas.errors import InvalidInput, PermissionDenied
from maas.security.acl import (
    ANONYMOUS,
    ENDPOINT_ACTIONS,
    GRPC_METHOD_KINDS,
    Action,
    Principal,
    allows,
    authorize,
    authorize_endpoint,
    check_scope,
)


def principal(*scopes: str) -> Principal:
    return Principal(name="ci", kind="key", scopes=frozenset(scopes), key_id="abc")


@pytest.mark.parametrize(
    ("scopes", "action", "model", "allowed"),
    [
        (("infer:digits",), Action.INFER, "digits", True),
        (("infer:digits",), Action.INFER, "iris", False),
        (("infer:digits",), Action.READ, "digits", True),  # inference implies metadata
        (("infer:digits",), Action.READ, "iris", False),
        (("infer:digits",), Action.ADMIN, None, False),
        (("infer:digits",), Action.METRICS, None, False),
        (("infer:digits",), Action.AUTHENTICATED, None, True),
        (("read:*",), Action.READ, "anything", True),
        (("read:*",), Action.READ, None, True),
        (("read:*",), Action.INFER, "digits", False),
        (("infer:digits-*",), Action.INFER, "digits-v2", True),
        (("infer:digits-*",), Action.INFER, "digits", False),
        (("infer:digits-*",), Action.INFER, "xdigits-v2", False),
        (("read:digits",), Action.READ, None, False),  # a listing needs read:*
        (("read:d.gits",), Action.READ, "digits", False),  # "." is literal, not a regex
        (("admin",), Action.ADMIN, None, True),
        (("admin",), Action.INFER, "iris", True),
        (("metrics",), Action.METRICS, None, True),
        ((), Action.OPEN, None, True),
        ((), Action.READ, "digits", False),
    ],
)
def test_allows(scopes: tuple[str, ...], action: Action, model: str | None, allowed: bool) -> None:
    assert allows(frozenset(scopes), action, model) is allowed


def test_authorize_names_the_missing_scope() -> None:
    with pytest.raises(PermissionDenied, match=r"lacks the scope infer:iris \(has: infer:digits"):
        authorize(principal("infer:digits"), Action.INFER, "iris")
    with pytest.raises(PermissionDenied, match="lacks the scope admin"):
        authorize_endpoint(principal("infer:*"), "repository_load")
    authorize(principal("infer:digits"), Action.INFER, "digits")  # no error
    authorize(principal("infer:digits"), "read", "digits")
    with pytest.raises(PermissionDenied, match="lacks the scope admin"):
        authorize(principal("infer:digits"), "admin")


def test_anonymous_principal_may_do_everything() -> None:
    for action in Action:
        authorize(ANONYMOUS, action, "any-model")


def test_every_grpc_method_has_an_action() -> None:
    assert set(GRPC_METHOD_KINDS.values()) <= set(ENDPOINT_ACTIONS)
    assert ENDPOINT_ACTIONS["health_live"] is Action.OPEN
    assert ENDPOINT_ACTIONS["infer"] is Action.INFER
    assert ENDPOINT_ACTIONS["metrics"] is Action.METRICS
    assert ENDPOINT_ACTIONS["repository_unload"] is Action.ADMIN


@pytest.mark.parametrize("scope", ["admin", "metrics", "infer:digits", "read:*", "infer:a-*-b"])
def test_good_scopes(scope: str) -> None:
    check_scope(scope)


@pytest.mark.parametrize("scope", ["", "root", "infer", "infer:", "write:x", "read:a b", "admin:x"])
def test_bad_scopes(scope: str) -> None:
    with pytest.raises(InvalidInput, match="invalid scope"):
        check_scope(scope)
