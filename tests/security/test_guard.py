"""The per-request guard as the front ends will use it: the acceptance cases without a server."""

from __future__ import annotations

from pathlib import Path

import pytest
from security_helpers import REDIS_URL

from maas.config import SecuritySettings
from maas.errors import PermissionDenied, ResourceExhausted, Unauthenticated
from maas.registry import Registry
from maas.security.acl import ANONYMOUS
from maas.security.auth import Authenticator
from maas.security.guard import UNCHECKED, Guard
from maas.security.keys import KeyStore
from maas.security.ratelimit import LocalRateLimiter, RateLimit, RedisRateLimiter


class StepClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def test_a_key_scoped_to_one_model(
    registry: Registry, registry_url: str, artifacts_dir: Path
) -> None:
    token = KeyStore(registry).create("ci", ["infer:digits"]).token
    guard = Guard.from_settings(registry, SecuritySettings())
    bearer = f"Bearer {token}"
    assert guard.check(bearer, "infer", "digits").name == "ci"
    assert guard.check(bearer, "model_metadata", "digits").name == "ci"
    assert guard.check(bearer, "server_metadata").name == "ci"
    with pytest.raises(PermissionDenied):
        guard.check(bearer, "infer", "iris")
    with pytest.raises(PermissionDenied):
        guard.check(bearer, "repository_load", "digits")
    with pytest.raises(PermissionDenied):
        guard.check(bearer, "metrics")
    with pytest.raises(Unauthenticated):
        guard.check(None, "infer", "digits")
    assert guard.check(None, "health_ready") is UNCHECKED  # health stays open
    with Registry(registry_url, artifacts_dir, source="cli") as cli:
        KeyStore(cli).revoke("ci")
    guard.authenticator.refresh()
    with pytest.raises(Unauthenticated):
        guard.check(bearer, "infer", "digits")


def test_a_burst_of_500_on_a_50_per_second_key(registry: Registry) -> None:
    token = KeyStore(registry).create("web", ["infer:*"], RateLimit.parse("50/s")).token
    other = KeyStore(registry).create("batch", ["infer:*"], RateLimit.parse("50/s")).token
    clock = StepClock()
    guard = Guard(Authenticator(KeyStore(registry)), LocalRateLimiter(clock))
    outcomes: list[float | None] = []
    for _ in range(500):
        try:
            guard.check(f"Bearer {token}", "infer", "digits")
            outcomes.append(None)
        except ResourceExhausted as err:
            outcomes.append(err.retry_after_s)
    assert outcomes.count(None) == 50
    refused = [r for r in outcomes if r is not None]
    assert len(refused) == 450
    assert all(r == pytest.approx(0.02) for r in refused)
    assert guard.check(f"Bearer {other}", "infer", "digits").name == "batch"  # others keep going
    clock.now += 1.0
    assert guard.check(f"Bearer {token}", "infer", "digits").name == "web"


def test_the_default_limit_applies_to_keys_without_their_own(registry: Registry) -> None:
    token = KeyStore(registry).create("ci", ["admin"]).token
    guard = Guard(Authenticator(KeyStore(registry)), LocalRateLimiter(StepClock()), RateLimit(2))
    guard.check(f"Bearer {token}", "management")
    guard.check(f"Bearer {token}", "management")
    with pytest.raises(ResourceExhausted):
        guard.check(f"Bearer {token}", "management")


def test_two_replicas_share_a_key_limit_through_redis(
    registry: Registry, redis_prefix: str
) -> None:
    token = KeyStore(registry).create("ci", ["infer:*"], RateLimit(0.001, burst=6)).token
    limiters = [RedisRateLimiter(REDIS_URL, prefix=redis_prefix) for _ in range(2)]
    replicas = [Guard(Authenticator(KeyStore(registry)), limiter) for limiter in limiters]
    try:
        passed = 0
        retries: list[float | None] = []
        for i in range(20):
            try:
                replicas[i % 2].check(f"Bearer {token}", "infer", "digits")
                passed += 1
            except ResourceExhausted as err:
                retries.append(err.retry_after_s)
        assert passed == 6
        assert len(retries) == 14
        assert all(r is not None and r > 0 for r in retries)
    finally:
        for limiter in limiters:
            limiter.close()


def test_no_auth_lets_everything_through_unlimited(registry: Registry) -> None:
    KeyStore(registry).create("ci", ["infer:digits"])
    guard = Guard.from_settings(registry, SecuritySettings(no_auth=True, default_rate_limit="1/h"))
    for _ in range(3):
        assert guard.check(None, "repository_unload", "iris") is ANONYMOUS


def test_server_actions_are_audited_with_their_source(registry: Registry) -> None:
    registry.record_audit("key:ci (abc)", "load", "digits@1", source="grpc")
    registry.record_audit("key:ci (abc)", "unload", "digits@1", outcome="permission_denied")
    rows = [(e.actor, e.action, e.target, e.outcome, e.source) for e in registry.audit_log()]
    assert rows == [
        ("key:ci (abc)", "load", "digits@1", "ok", "grpc"),
        ("key:ci (abc)", "unload", "digits@1", "permission_denied", "test"),
    ]
