"""`RestServer`: runs the REST app on `Http1Server` inside the caller's event loop."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from maas.serving.dataplane import DataPlane
from maas.serving.rest.app import RestApp
from maas.serving.rest.auth import guarded_app
from maas.serving.rest.http1 import Http1Server

if TYPE_CHECKING:
    from maas.serving.protection import Protection

log = logging.getLogger(__name__)


class RestServer:
    """The v2 REST API on `host:port` (0 picks a free port; `port` tells which).

    Signals are left to the caller: `maas serve` handles SIGINT/SIGTERM itself and calls `stop()`.
    """

    def __init__(
        self,
        data_plane: DataPlane,
        host: str = "127.0.0.1",
        port: int = 8000,
        *,
        protection: Protection | None = None,
    ) -> None:
        app = RestApp(data_plane)
        served: Any = app if protection is None else guarded_app(app, data_plane, protection)
        options = protection.http_options() if protection is not None else {}
        self._http = Http1Server(served, host, port, **options)  # TLS and the connection cap
        self._is_started = False

    @property
    def port(self) -> int:
        """The bound port (also when 0 was asked)."""
        return self._http.port

    async def start(self) -> None:
        """Bind and start answering.

        Raises:
            Unavailable: the address cannot be bound.
        """
        await self._http.start()
        self._is_started = True
        log.info("rest.started", extra={"host": self._http.host, "port": self._http.port})

    async def stop(self, grace_s: float | None = None) -> None:
        """Stop accepting, let open requests finish (within `grace_s`, default 5 s), then close."""
        if not self._is_started:
            return
        self._is_started = False
        await self._http.stop(5.0 if grace_s is None else grace_s)
        log.info("rest.stopped")
