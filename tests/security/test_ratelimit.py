"""Token buckets per key: in this process, and shared by replicas through a real Redis."""

from __future__ import annotations

import pytest
from security_helpers import REDIS_URL

from maas.config import SecuritySettings
from maas.errors import InvalidInput, ResourceExhausted, Unavailable
from maas.security.ratelimit import (
    PRUNE_AT_BUCKETS,
    LocalRateLimiter,
    RateLimit,
    RedisRateLimiter,
    limiter_from_settings,
)


class StepClock:
    """A clock the test moves by hand (time is not ours to control otherwise)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def take(limiter: LocalRateLimiter | RedisRateLimiter, key: str, limit: RateLimit, n: int) -> int:
    """How many of `n` requests got through."""
    passed = 0
    for _ in range(n):
        try:
            limiter.acquire(key, limit)
            passed += 1
        except ResourceExhausted:
            pass
    return passed


@pytest.mark.parametrize(
    ("text", "rate", "burst", "capacity"),
    [
        ("50/s", 50.0, None, 50),
        ("3000/m", 50.0, None, 50),
        ("3600/h", 1.0, None, 1),
        ("0.5/s", 0.5, None, 1),
        ("10/s,burst=40", 10.0, 40, 40),
        (" 10 / sec , burst = 2 ", 10.0, 2, 2),
    ],
)
def test_parse(text: str, rate: float, burst: int | None, capacity: int) -> None:
    limit = RateLimit.parse(text)
    assert (limit.rate_per_s, limit.burst, limit.capacity) == (rate, burst, capacity)


@pytest.mark.parametrize("text", ["50", "50/d", "-1/s", "0/s", "fast", "10/s,burst=0"])
def test_parse_refuses_bad_limits(text: str) -> None:
    with pytest.raises(InvalidInput):
        RateLimit.parse(text)


def test_local_bucket_allows_the_burst_then_refuses_with_retry_after() -> None:
    clock = StepClock()
    limiter = LocalRateLimiter(clock)
    limit = RateLimit(50)
    assert take(limiter, "k", limit, 500) == 50  # a burst of 500 at one instant
    with pytest.raises(ResourceExhausted, match="rate limit of 50/s exceeded") as caught:
        limiter.acquire("k", limit)
    assert caught.value.retry_after_s == pytest.approx(1 / 50)
    clock.now += 0.1  # five tokens come back
    assert take(limiter, "k", limit, 10) == 5
    clock.now += 60  # never more than the bucket holds
    assert take(limiter, "k", limit, 100) == 50


def test_local_buckets_are_per_key_and_per_process() -> None:
    clock = StepClock()
    limit = RateLimit(1, burst=3)
    one, two = LocalRateLimiter(clock), LocalRateLimiter(clock)
    assert take(one, "a", limit, 10) == 3
    assert take(one, "b", limit, 10) == 3  # another key has its own bucket
    assert take(two, "a", limit, 10) == 3  # another process counts on its own


# A rate so slow that no token comes back while a test runs: counts do not depend on timing.
SLOW = RateLimit(0.001, burst=10)


def test_redis_bucket_refuses_with_retry_after(redis_prefix: str) -> None:
    limiter = RedisRateLimiter(REDIS_URL, prefix=redis_prefix)
    try:
        assert take(limiter, "k", SLOW, 25) == 10
        with pytest.raises(ResourceExhausted) as caught:
            limiter.acquire("k", SLOW)
        retry = caught.value.retry_after_s
        assert retry is not None
        assert 900 < retry <= 1000  # one token at 0.001/s takes up to 1000 s
    finally:
        limiter.close()


def test_two_replicas_share_one_bucket_through_redis(redis_prefix: str) -> None:
    replicas = [RedisRateLimiter(REDIS_URL, prefix=redis_prefix) for _ in range(2)]
    try:
        passed = [0, 0]
        for i in range(40):  # alternate between the replicas, as a load balancer would
            try:
                replicas[i % 2].acquire("shared-key", SLOW)
                passed[i % 2] += 1
            except ResourceExhausted:
                pass
        assert sum(passed) == 10  # the key's limit holds across both
        assert passed == [5, 5]
        assert take(replicas[1], "other-key", SLOW, 20) == 10
    finally:
        for limiter in replicas:
            limiter.close()


def test_unreachable_redis_is_unavailable() -> None:
    limiter = RedisRateLimiter("redis://127.0.0.1:1/0")
    try:
        with pytest.raises(Unavailable, match="unreachable"):
            limiter.acquire("k", SLOW)
    finally:
        limiter.close()


def test_settings_choose_the_limiter() -> None:
    assert isinstance(limiter_from_settings(SecuritySettings()), LocalRateLimiter)
    shared = limiter_from_settings(SecuritySettings(redis_url=REDIS_URL))
    assert isinstance(shared, RedisRateLimiter)
    shared.close()


def test_redis_url_comes_from_maas_redis_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAAS_REDIS_URL", REDIS_URL)
    assert SecuritySettings().redis_url == REDIS_URL


def test_refilled_buckets_are_forgotten_so_many_callers_cannot_grow_memory() -> None:
    clock = StepClock()
    limiter = LocalRateLimiter(clock)
    limit = RateLimit.parse("10/s")
    for n in range(PRUNE_AT_BUCKETS):
        limiter.acquire(f"caller-{n}", limit)
    assert limiter.bucket_count == PRUNE_AT_BUCKETS
    limiter.acquire("busy", RateLimit.parse("1/s"))  # still within the same instant
    assert limiter.bucket_count == PRUNE_AT_BUCKETS + 1  # nothing has refilled yet: nothing is lost
    clock.now += 0.5  # "busy" (1/s) is still short of a token; the 10/s buckets are full
    limiter.acquire("newcomer", limit)
    assert limiter.bucket_count == 2
    with pytest.raises(ResourceExhausted):
        limiter.acquire("busy", RateLimit.parse("1/s"))  # its emptied bucket was kept
