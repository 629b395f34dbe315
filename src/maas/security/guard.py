"""The one call a front end makes per request: authenticate, authorize, rate-limit.

REST and gRPC each build one `Guard` at start, start `authenticator.run_polling()` as a background
task, and call `check(credentials, kind, model)` before handling a request; the errors it raises map
to 401 / 403 / 429 (with `Retry-After` from `retry_after_s`) / 503 through the usual error table.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from maas.security.acl import ANONYMOUS, ENDPOINT_ACTIONS, Action, Principal, authorize
from maas.security.auth import Authenticator
from maas.security.ratelimit import (
    LocalRateLimiter,
    RateLimit,
    RateLimiter,
    limiter_from_settings,
)

if TYPE_CHECKING:
    from maas.config import SecuritySettings
    from maas.registry import Registry

log = logging.getLogger(__name__)

# Who calls an open endpoint: nobody we know, allowed nothing beyond it.
UNCHECKED = Principal(name="unchecked", kind="open", scopes=frozenset())


class Guard:
    """Authentication, access control and per-key rate limits for one server.

    Args:
        authenticator: turns credentials into a Principal.
        limiter: token buckets (in process, or shared through Redis).
        default_limit: the limit of keys without their own (None: unlimited).
    """

    def __init__(
        self,
        authenticator: Authenticator,
        limiter: RateLimiter | None = None,
        default_limit: RateLimit | None = None,
    ) -> None:
        self.authenticator = authenticator
        self._limiter: RateLimiter = limiter if limiter is not None else LocalRateLimiter()
        self._default_limit = default_limit

    @classmethod
    def from_settings(cls, registry: Registry, security: SecuritySettings) -> Guard:
        """The guard `security` describes, with keys from `registry`."""
        default = (
            RateLimit.parse(security.default_rate_limit) if security.default_rate_limit else None
        )
        return cls(
            Authenticator.from_settings(registry, security),
            limiter_from_settings(security),
            default,
        )

    @property
    def is_blocking(self) -> bool:
        """Whether `check` may wait on the network (a shared limiter): call it off the loop."""
        return not isinstance(self._limiter, LocalRateLimiter)

    def check(
        self,
        credentials: str | None,
        kind: str,
        model: str | None = None,
        model_limit: RateLimit | None = None,
    ) -> Principal:
        """Let one request through, or raise.

        Args:
            credentials: the `Authorization` header or gRPC `authorization` metadata (None: absent).
            kind: the endpoint kind, a key of `ENDPOINT_ACTIONS` (`infer`, `model_metadata`, ...).
            model: the model the request is about, if any.
            model_limit: the model's own limit (from the serve file), counted per caller and
                model besides the caller's own limit; with authentication off, all callers of
                the model share it.

        Raises:
            Unauthenticated: missing or invalid credentials (open endpoints never raise it).
            PermissionDenied: the credentials lack the scope.
            ResourceExhausted: the key's rate limit is used up (`retry_after_s` is set).
            Unavailable: the shared rate-limit store is unreachable.
        """
        action = ENDPOINT_ACTIONS[kind]
        if action is Action.OPEN:
            return UNCHECKED  # health stays open: credentials are not even read
        principal = self.authenticator.authenticate(credentials)
        if principal is not ANONYMOUS:  # authentication off: no scopes, no per-key limits
            authorize(principal, action, model)
            limit = principal.rate_limit or self._default_limit
            if limit is not None:
                self._limiter.acquire(principal.limit_key, limit)
        if model_limit is not None and model is not None:
            self._limiter.acquire(f"{principal.limit_key}@model:{model}", model_limit)
        return principal

    def close(self) -> None:
        """Release the limiter's connections (a shared limiter holds some)."""
        close = getattr(self._limiter, "close", None)
        if callable(close):
            close()
