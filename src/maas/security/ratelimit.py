"""Per-key rate limits: token buckets, in this process or shared by all replicas through Redis.

A bucket holds up to `burst` tokens and refills at `rate_per_s`; each request takes one. An empty
bucket refuses with ResourceExhausted carrying `retry_after_s`, the time until one token is back.
Without Redis each process keeps its own buckets, so N replicas allow N times the rate.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from maas.errors import InvalidInput, ResourceExhausted, Unavailable

if TYPE_CHECKING:
    from maas.config import SecuritySettings

log = logging.getLogger(__name__)

_UNITS_S = {"s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}
_LIMIT_RE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*/\s*([a-z]+)\s*(?:,\s*burst\s*=\s*(\d+)\s*)?")
REDIS_PREFIX = "maas:ratelimit:"
REDIS_TIMEOUT_S = 0.5  # a slow Redis must not hold requests up for long


@dataclass(frozen=True)
class RateLimit:
    """A token bucket's shape.

    Attributes:
        rate_per_s: tokens added per second.
        burst: the bucket's size: how many requests may arrive at once (None: the rate per
            second rounded up, at least 1).
    """

    rate_per_s: float
    burst: int | None = None

    def __post_init__(self) -> None:
        if not (self.rate_per_s > 0 and math.isfinite(self.rate_per_s)):
            raise InvalidInput(f"a rate limit must be above 0 per second, got {self.rate_per_s}")
        if self.burst is not None and self.burst < 1:
            raise InvalidInput(f"a rate limit's burst must be at least 1, got {self.burst}")

    @property
    def capacity(self) -> int:
        """The bucket's size in tokens."""
        return self.burst if self.burst is not None else max(1, math.ceil(self.rate_per_s))

    @classmethod
    def parse(cls, text: str) -> RateLimit:
        """`50/s`, `3000/min`, `10/s,burst=40` -> RateLimit.

        Raises:
            InvalidInput: the text is not RATE/UNIT[,burst=N] with unit s, m(in) or h.
        """
        found = _LIMIT_RE.fullmatch(text.lower())
        if not found or found.group(2) not in _UNITS_S:
            raise InvalidInput(
                f"invalid rate limit {text!r}: use RATE/UNIT with unit s, m or h, "
                "optionally ,burst=N (e.g. 50/s, 3000/m, 10/s,burst=40)"
            )
        rate = float(found.group(1)) / _UNITS_S[found.group(2)]
        burst = int(found.group(3)) if found.group(3) else None
        return cls(rate, burst)

    def __str__(self) -> str:
        text = f"{self.rate_per_s:g}/s"
        return f"{text},burst={self.burst}" if self.burst is not None else text


class RateLimiter(Protocol):
    """Takes one token from a key's bucket or refuses."""

    def acquire(self, key_id: str, limit: RateLimit) -> None:
        """Take a token for `key_id`; raise ResourceExhausted (with retry_after_s) if none."""


def _refused(key_id: str, limit: RateLimit, retry_after_s: float) -> ResourceExhausted:
    return ResourceExhausted(
        f"rate limit of {limit} exceeded for key {key_id}; retry in {retry_after_s:.3f} s",
        retry_after_s=retry_after_s,
    )


@dataclass
class _Bucket:
    tokens: float
    updated_s: float
    full_after_s: float  # from `updated_s` on, the bucket is full again: as good as absent


PRUNE_AT_BUCKETS = 10_000  # past this many buckets, drop the full ones (bounds the memory)


class LocalRateLimiter:
    """Token buckets in this process (thread-safe); each replica counts on its own.

    Args:
        clock: monotonic seconds (injected so tests can step time).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, _Bucket] = {}

    def acquire(self, key_id: str, limit: RateLimit) -> None:
        """Take one token from `key_id`'s bucket.

        Raises:
            ResourceExhausted: the bucket is empty; `retry_after_s` says when a token is back.
        """
        now = self._clock()
        capacity = float(limit.capacity)
        with self._lock:
            bucket = self._buckets.get(key_id)
            if bucket is None:
                if len(self._buckets) >= PRUNE_AT_BUCKETS:
                    self._prune(now)
                bucket = self._buckets[key_id] = _Bucket(capacity, now, 0.0)
            elapsed = max(0.0, now - bucket.updated_s)
            bucket.tokens = min(capacity, bucket.tokens + elapsed * limit.rate_per_s)
            bucket.updated_s = now
            bucket.full_after_s = (capacity - bucket.tokens + 1.0) / limit.rate_per_s
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return
            retry_after_s = (1.0 - bucket.tokens) / limit.rate_per_s
        raise _refused(key_id, limit, retry_after_s)

    def _prune(self, now: float) -> None:
        """Forget buckets that have refilled (callers hold the lock)."""
        full = [
            key
            for key, bucket in self._buckets.items()
            if now - bucket.updated_s >= bucket.full_after_s
        ]
        for key in full:
            del self._buckets[key]

    @property
    def bucket_count(self) -> int:
        """How many buckets are held."""
        return len(self._buckets)


# Refill and take in one step inside Redis, on Redis's own clock, so replicas agree.
# KEYS[1]: the bucket; ARGV: rate per second, capacity. Returns {taken (0/1), retry_after_s}.
_TAKE_SCRIPT = """
local rate = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'updated')
local tokens = tonumber(state[1])
local updated = tonumber(state[2])
if tokens == nil then
  tokens = capacity
  updated = now
end
tokens = math.min(capacity, tokens + math.max(0, now - updated) * rate)
local taken = 0
local retry_after = 0
if tokens >= 1 then
  tokens = tokens - 1
  taken = 1
else
  retry_after = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'updated', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(capacity / rate * 1000) + 1000)
return {taken, tostring(retry_after)}
"""


class RedisRateLimiter:
    """Token buckets in Redis, shared by every server that uses the same Redis.

    Args:
        url: `redis://HOST:PORT/DB` (`MAAS_REDIS_URL`).
        prefix: namespace of the bucket keys.
    """

    def __init__(self, url: str, prefix: str = REDIS_PREFIX) -> None:
        import redis

        self._prefix = prefix
        self._client: Any = redis.Redis.from_url(
            url, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S
        )
        self._take = self._client.register_script(_TAKE_SCRIPT)

    def acquire(self, key_id: str, limit: RateLimit) -> None:
        """Take one token from `key_id`'s shared bucket.

        Raises:
            ResourceExhausted: the bucket is empty; `retry_after_s` says when a token is back.
            Unavailable: Redis cannot be reached.
        """
        import redis

        try:
            taken, retry = self._take(
                keys=[self._prefix + key_id], args=[repr(limit.rate_per_s), limit.capacity]
            )
        except redis.RedisError as err:
            raise Unavailable(f"the rate-limit store (Redis) is unreachable: {err}") from err
        if int(taken) == 1:
            return
        raise _refused(key_id, limit, float(retry))

    def close(self) -> None:
        """Close the connections to Redis."""
        self._client.close()


def limiter_from_settings(security: SecuritySettings) -> LocalRateLimiter | RedisRateLimiter:
    """A Redis limiter when `MAAS_REDIS_URL` is set, else one for this process (logged)."""
    if security.redis_url:
        return RedisRateLimiter(security.redis_url)
    log.info("ratelimit.local", extra={"note": "without Redis, rate limits count per process"})
    return LocalRateLimiter()
