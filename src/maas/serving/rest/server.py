"""`RestServer`: runs the REST app on uvicorn inside the caller's event loop."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
from typing import TYPE_CHECKING, Any

from maas.errors import Unavailable
from maas.serving.dataplane import DataPlane
from maas.serving.rest.app import RestApp
from maas.serving.rest.auth import guarded_app

if TYPE_CHECKING:
    from maas.serving.protection import Protection

log = logging.getLogger(__name__)


class RestServer:
    """The v2 REST API on `host:port` (0 picks a free port; `port` tells which).

    Uses httptools when it is installed. Signals are left to the caller: `maas serve` handles
    SIGINT/SIGTERM itself and calls `stop()`.
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
        self._app: Any = app if protection is None else guarded_app(app, data_plane, protection)
        self._options = protection.uvicorn_options() if protection is not None else {}
        self._host = host
        self._requested_port = port
        self._server: Any = None
        self._loop_task: asyncio.Task[None] | None = None
        self._port: int | None = None

    @property
    def port(self) -> int:
        """The bound port (also when 0 was asked)."""
        if self._port is None:
            raise Unavailable("the REST server is not started")
        return self._port

    async def start(self) -> None:
        """Bind and start answering."""
        import uvicorn

        config = uvicorn.Config(
            self._app,
            host=self._host,
            port=self._requested_port,
            http="httptools" if importlib.util.find_spec("httptools") else "h11",
            lifespan="off",
            access_log=False,
            log_config=None,
            log_level="warning",
            server_header=False,
            proxy_headers=False,  # no proxy in front by default; saves a middleware per request
            timeout_graceful_shutdown=5,
            **self._options,  # TLS and the connection cap
        )
        config.load()
        server = uvicorn.Server(config)
        server.lifespan = config.lifespan_class(config)
        try:
            await server.startup()
        except SystemExit as err:  # uvicorn exits when it cannot bind
            raise Unavailable(f"cannot listen on {self._host}:{self._requested_port}") from err
        self._server = server
        self._port = int(server.servers[0].sockets[0].getsockname()[1])
        self._loop_task = asyncio.create_task(server.main_loop())
        log.info("rest.started", extra={"host": self._host, "port": self._port})

    async def stop(self, grace_s: float | None = None) -> None:
        """Stop accepting, let open requests finish (within `grace_s`, default 5 s), then close."""
        server = self._server
        if server is None:
            return
        if grace_s is not None:
            server.config.timeout_graceful_shutdown = grace_s
        server.should_exit = True
        if self._loop_task is not None:
            self._loop_task.cancel()  # it only ticks the Date header; no need to wait a tick
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        await server.shutdown()
        self._server = None
        log.info("rest.stopped")
