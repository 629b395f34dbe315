"""`Protection`: what guards a server's front ends: auth, per-model limits, TLS, connection caps.

One `Protection` is built per `maas serve` from the settings and the serve file and handed to
both front ends; REST admits each request through `serving.admission.Admission`, gRPC adds
`grpc.auth.GuardInterceptor`. `start()` begins reloading API keys every poll interval (so a
revoked key stops working on a running server), `stop()` ends it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from maas.config import ModelServeConfig, load_serve_file
from maas.security.ratelimit import RateLimit

if TYPE_CHECKING:
    from maas.config import Settings
    from maas.registry import Registry
    from maas.security.guard import Guard
    from maas.security.tls import TlsConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelLimits:
    """Limits of one model, besides its batching policy's `max_batch_size`.

    Attributes:
        rate_limit: requests per caller on this model (None: only the caller's own limit).
        max_request_bytes: largest request body (None: the server's limit).
    """

    rate_limit: RateLimit | None = None
    max_request_bytes: int | None = None

    @classmethod
    def from_config(cls, entry: ModelServeConfig, base: ModelLimits | None = None) -> ModelLimits:
        """The limits a serve-file entry sets, over `base` for the fields it leaves out.

        Raises:
            InvalidInput: the rate limit does not parse.
        """
        base = base or cls()
        rate = RateLimit.parse(entry.rate_limit) if entry.rate_limit else base.rate_limit
        size = (
            entry.max_request_bytes
            if entry.max_request_bytes is not None
            else base.max_request_bytes
        )
        return cls(rate, size)


@dataclass
class Protection:
    """Authentication, limits and TLS of one server.

    Attributes:
        guard: authenticates, authorizes and rate-limits each request (None: nothing checked).
        tls: certificate, key and optional client CA (None: plain HTTP and gRPC).
        max_connections: concurrent HTTP requests, and concurrent gRPC calls (None: no cap).
        default_limits: limits of models without their own entry.
        model_limits: model name -> its limits.
    """

    guard: Guard | None = None
    tls: TlsConfig | None = None
    max_connections: int | None = None
    default_limits: ModelLimits = field(default_factory=ModelLimits)
    model_limits: dict[str, ModelLimits] = field(default_factory=dict)
    _polling: asyncio.Task[None] | None = field(default=None, init=False, repr=False)

    def limits_for(self, model: str | None) -> ModelLimits:
        """The limits of `model` (the defaults when None or without an entry)."""
        if model is None:
            return self.default_limits
        return self.model_limits.get(model, self.default_limits)

    @property
    def scheme(self) -> str:
        """`https` with TLS, else `http`."""
        return "https" if self.tls is not None else "http"

    @classmethod
    def from_settings(cls, settings: Settings, registry: Registry) -> Protection:
        """The protection `settings` (and its serve file) describe, with keys from `registry`.

        Raises:
            InvalidInput: a bad rate limit, TLS file or JWT setting.
        """
        from maas.security.guard import Guard
        from maas.security.tls import TlsConfig

        default = ModelLimits()
        per_model: dict[str, ModelLimits] = {}
        if settings.serve.config is not None:
            doc = load_serve_file(settings.serve.config)
            default = ModelLimits.from_config(doc.defaults)
            per_model = {
                name: ModelLimits.from_config(entry, default) for name, entry in doc.models.items()
            }
        return cls(
            guard=Guard.from_settings(registry, settings.security),
            tls=TlsConfig.from_settings(settings.security),
            max_connections=settings.serve.max_connections,
            default_limits=default,
            model_limits=per_model,
        )

    async def start(self) -> None:
        """Begin reloading API keys every poll interval (revocations reach this server)."""
        if self.guard is None or self._polling is not None:
            return
        self._polling = asyncio.create_task(self.guard.authenticator.run_polling())

    async def stop(self) -> None:
        """Stop reloading keys and release the rate limiter's connections."""
        task, self._polling = self._polling, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.guard is not None:
            self.guard.close()
