"""`Admission`: the one check every request passes before it is answered, on REST and gRPC alike.

It authenticates the caller, checks the scope the endpoint kind needs, takes a token from the
caller's (and the model's) rate limit, and checks the request's size against the model's limit.
A refusal is a `MaasError` (401 / 403 / 413 / 429 / 503), mapped by each transport's table.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from maas.errors import PayloadTooLarge

if TYPE_CHECKING:
    from maas.security.acl import Principal
    from maas.serving.protection import ModelLimits, Protection


class Admission:
    """Admits requests under one server's protection.

    Args:
        protection: the guard and per-model limits (None: everything is let in).
        max_request_bytes: the server's own body limit, under any model's.
    """

    def __init__(self, protection: Protection | None, max_request_bytes: int) -> None:
        self._protection = protection
        self._max_bytes = max_request_bytes
        guard = protection.guard if protection is not None else None
        self._guard = guard
        self._is_blocking = guard is not None and guard.is_blocking

    def max_request_bytes(self, model: str | None) -> int:
        """The largest body a request about `model` may have."""
        if self._protection is None:
            return self._max_bytes
        model_limit = self._protection.limits_for(model).max_request_bytes
        return self._max_bytes if model_limit is None else min(model_limit, self._max_bytes)

    def _limits(self, model: str | None) -> ModelLimits | None:
        return self._protection.limits_for(model) if self._protection is not None else None

    async def admit(
        self, credentials: str | None, kind: str, model: str | None
    ) -> Principal | None:
        """Let a request in, or raise.

        Args:
            credentials: the `Authorization` header or `authorization` metadata (None: absent).
            kind: the endpoint kind (`security.acl.ENDPOINT_ACTIONS`).
            model: the model the request is about, if any.

        Returns:
            The caller (None when no guard is configured).

        Raises:
            Unauthenticated, PermissionDenied, ResourceExhausted, Unavailable: see `Guard.check`.
        """
        guard = self._guard
        if guard is None:
            return None
        limits = self._limits(model)
        rate = limits.rate_limit if limits is not None else None
        if self._is_blocking:  # a shared limiter talks to Redis: keep it off the event loop
            return await asyncio.to_thread(guard.check, credentials, kind, model, rate)
        return guard.check(credentials, kind, model, rate)

    def check_size(self, size_bytes: int, model: str | None) -> None:
        """Refuse a request of `size_bytes` over the limit for `model`.

        Raises:
            PayloadTooLarge: it is over.
        """
        if size_bytes > self.max_request_bytes(model):
            raise self.too_large(size_bytes, model)

    def too_large(self, size_bytes: int, model: str | None) -> PayloadTooLarge:
        """The error for a request of `size_bytes`, over the limit for `model`."""
        where = f"model {model}'s" if model is not None else "the server's"
        limit = self.max_request_bytes(model)
        return PayloadTooLarge(f"request of {size_bytes} bytes is over {where} limit of {limit}")
