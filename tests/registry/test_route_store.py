"""Routes in the registry: splits, guards, shadows and trips are stored and audited; rollback
moves an alias back along its history."""

from __future__ import annotations

import pytest
from registry_models import SIGNATURE

from maas.errors import Conflict, InvalidInput, ModelNotFound
from maas.registry import Registry
from maas.registry.routes import (
    RouteGuard,
    clear_route,
    get_route,
    list_routes,
    parse_split,
    rollback_alias,
    set_route,
    trip_target,
)


@pytest.fixture
def digits(registry: Registry, onnx_model: bytes) -> Registry:
    for _ in range(3):
        registry.register("digits", onnx_model, signature=SIGNATURE)
    registry.set_alias("digits", "production", 1)
    registry.set_alias("digits", "canary", 2)
    return registry


def test_a_route_is_stored_read_back_and_cleared(digits: Registry) -> None:
    guard = RouteGuard(max_error_rate=0.05, max_p99_ms=50, window_s=30)
    written = set_route(
        digits,
        "digits",
        parse_split(["production=90", "canary=10"]),
        guard=guard,
        shadow="3",
        actor="ana",
    )
    assert written.split == (("production", 90), ("canary", 10))
    assert written.primary == "production"
    read = get_route(digits, "digits")
    assert read is not None
    assert read.guard == guard
    assert read.shadow == "3"
    assert read.actor == "ana"
    assert list_routes(digits) == {"digits": read}
    assert read.describe() == "production=90 canary=10 shadow=3"
    assert clear_route(digits, "digits", actor="ana") is True
    assert get_route(digits, "digits") is None
    actions = [(e.action, e.actor) for e in digits.audit_log()]
    assert ("set_route", "ana") in actions
    assert ("clear_route", "ana") in actions


def test_a_trip_is_kept_with_its_reason_and_audited(digits: Registry) -> None:
    set_route(digits, "digits", [("production", 90), ("canary", 10)])
    trip_target(digits, "digits", "canary", "error rate 0.2 > 0.05", actor="server")
    route = get_route(digits, "digits")
    assert route is not None
    assert route.tripped == {"canary": "error rate 0.2 > 0.05"}
    assert "canary stopped by its guard: error rate 0.2 > 0.05" in route.describe()
    last = digits.audit_log()[-1]
    assert (last.action, last.target) == ("route_guard", "digits@canary: error rate 0.2 > 0.05")
    set_route(digits, "digits", [("production", 90), ("canary", 10)])
    fresh = get_route(digits, "digits")
    assert fresh is not None
    assert fresh.tripped == {}


@pytest.mark.parametrize(
    ("items", "error"),
    [
        (["production=90", "production=10"], InvalidInput),
        (["production=x"], InvalidInput),
        (["production=0"], InvalidInput),
        (["latest=10"], InvalidInput),
        (["staging=10"], ModelNotFound),
        (["7=10"], ModelNotFound),
    ],
)
def test_bad_splits_are_refused(digits: Registry, items: list[str], error: type) -> None:
    with pytest.raises(error):
        set_route(digits, "digits", parse_split(items))
    assert get_route(digits, "digits") is None


def test_a_guard_needs_a_limit() -> None:
    with pytest.raises(InvalidInput, match="max-error-rate"):
        RouteGuard()


def test_rollback_moves_the_alias_to_its_previous_version(digits: Registry) -> None:
    digits.set_alias("digits", "production", 3)
    assert rollback_alias(digits, "digits", actor="ana") == (3, 1)
    assert digits.get("digits", "production").version == 1
    assert ("rollback", "ok: 3->1") in [(e.action, e.outcome) for e in digits.audit_log()]


def test_rollback_without_history_is_a_conflict(digits: Registry) -> None:
    with pytest.raises(Conflict, match="no earlier version"):
        rollback_alias(digits, "digits", "canary")
