"""Building a data plane from the registry, and `Server`: REST and gRPC over one data plane."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry

from maas.metrics.prometheus import ServingMetrics
from maas.serving.dataplane import DataPlane
from maas.serving.options import ServingConfig
from maas.serving.protection import Protection
from maas.serving.repository import (
    LoadedVersion,
    ModelCatalog,
    ModelRepository,
    load_version,
    select_versions,
)
from maas.serving.rest.server import RestServer
from maas.serving.tuned import policy_for_version

if TYPE_CHECKING:
    from maas.config import Settings

log = logging.getLogger(__name__)


def build_data_plane(
    registry: ModelCatalog,
    models: Sequence[str] | None = None,
    serving_config: ServingConfig | None = None,
    metrics_registry: CollectorRegistry | None = None,
) -> DataPlane:
    """Load the chosen versions from the registry and return a ready data plane.

    Args:
        registry: a `maas.registry.store.Registry` (or anything with its read methods).
        models: `NAME[@REF]` to serve; None serves the serve file's list, else every registered
            model (its `production` alias, else its latest version).
        serving_config: limits and batching policies; defaults when None.
        metrics_registry: where metrics are registered; a fresh one when None.

    Call `close()` on the result to stop its worker threads.
    """
    config = serving_config or ServingConfig()
    metrics = ServingMetrics(metrics_registry or CollectorRegistry(auto_describe=True))
    loaded: list[LoadedVersion] = []
    try:
        for mv in select_versions(registry, models, config):
            policy = policy_for_version(config, registry, mv)  # settings or tuned with mv
            loaded.append(load_version(registry, mv, policy, metrics, config.generation))
    except BaseException:
        for item in loaded:
            item.stop()
        raise
    return DataPlane(ModelRepository(loaded), metrics, config)


class Server:
    """The REST and gRPC servers of one data plane, started and stopped together.

    Args:
        data_plane: what both transports call; the caller closes it after `stop()`.
        host: interface to bind (127.0.0.1 by default; 0.0.0.0 is opt-in).
        http_port: REST port, 0 for a free one.
        grpc_port: gRPC port, 0 for a free one, None for no gRPC.
        protection: authentication, limits and TLS of both servers (None: open, plain).
    """

    def __init__(
        self,
        data_plane: DataPlane,
        *,
        host: str = "127.0.0.1",
        http_port: int = 8000,
        grpc_port: int | None = 8001,
        protection: Protection | None = None,
    ) -> None:
        self._data_plane = data_plane
        self._host = host
        self._protection = protection
        self._rest = RestServer(data_plane, host, http_port, protection=protection)
        self._grpc_port = grpc_port
        self._grpc: Any = None

    @property
    def host(self) -> str:
        """The interface both servers listen on."""
        return self._host

    @property
    def scheme(self) -> str:
        """`https` when serving over TLS, else `http`."""
        return self._protection.scheme if self._protection is not None else "http"

    @property
    def http_port(self) -> int:
        """The bound REST port."""
        return self._rest.port

    @property
    def grpc_port(self) -> int | None:
        """The bound gRPC port (None without gRPC)."""
        return None if self._grpc is None else int(self._grpc.port)

    async def start(self) -> None:
        """Start REST, then gRPC; if gRPC fails, REST is stopped again."""
        await self._rest.start()
        if self._protection is not None:
            await self._protection.start()  # key reloads: revocations reach this server
        if self._grpc_port is None:
            return
        from maas.serving.grpc.server import GrpcServer

        grpc_server = GrpcServer(
            self._data_plane, host=self._host, port=self._grpc_port, protection=self._protection
        )
        try:
            await grpc_server.start()
        except BaseException:
            await self._rest.stop()
            if self._protection is not None:
                await self._protection.stop()
            raise
        self._grpc = grpc_server

    async def stop(self, grace_s: float = 5.0) -> None:
        """Stop both servers at once, letting in-flight requests finish within `grace_s`."""
        stopping = [self._rest.stop(grace_s)]
        if self._grpc is not None:
            stopping.append(self._grpc.stop(grace_s))
            self._grpc = None
        await asyncio.gather(*stopping)
        if self._protection is not None:
            await self._protection.stop()


async def serve_until_signalled(
    settings: Settings,
    models: Sequence[str] | None,
    *,
    on_started: Callable[[Server], None],
) -> None:
    """Run `maas serve`: load from the registry, serve until SIGINT/SIGTERM, stop cleanly."""
    from maas.registry.store import Registry

    serve = settings.serve
    registry = Registry.from_settings(settings)
    config = ServingConfig.from_settings(serve)
    protection = Protection.from_settings(settings, registry)
    data_plane = await asyncio.to_thread(build_data_plane, registry, models, config)
    from maas.serving.manager import ModelManager

    manager = ModelManager(registry, data_plane, models)
    data_plane.control = manager
    server = Server(
        data_plane,
        host=serve.host,
        http_port=serve.http_port,
        grpc_port=serve.grpc_port,
        protection=protection,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await server.start()
        await manager.start()
        on_started(server)
        log.info(
            "server.started",
            extra={"http_port": server.http_port, "grpc_port": server.grpc_port},
        )
        await stop.wait()
        log.info("server.stopping")
        data_plane.begin_shutdown()
    finally:
        await manager.stop()
        await server.stop(config.grace_period_s)
        data_plane.close()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
