"""The composition root of a server, and `Server`: REST and gRPC over one data plane.

`build_server` builds every object of `maas serve` and hands each what it uses in its
constructor: registry (with the signature check the settings ask for), loader, guard trips,
repository, model manager, data plane, protection and the front ends. `build_serving` is the
same without the front ends, `build_data_plane` a data plane that follows no registry.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry

from maas.metrics.prometheus import ServingMetrics
from maas.metrics.rollout import RolloutMetrics
from maas.serving.dataplane import DataPlane
from maas.serving.loading import VersionLoader
from maas.serving.manager import ModelManager
from maas.serving.options import ServingConfig
from maas.serving.protection import Protection
from maas.serving.repository import (
    LoadedVersion,
    ModelCatalog,
    ModelRepository,
    select_versions,
)
from maas.serving.rest.server import RestServer
from maas.serving.trips import GuardTrips

if TYPE_CHECKING:
    from maas.config import Settings
    from maas.registry.store import Registry

log = logging.getLogger(__name__)


def build_data_plane(
    registry: ModelCatalog,
    models: Sequence[str] | None = None,
    serving_config: ServingConfig | None = None,
    metrics_registry: CollectorRegistry | None = None,
) -> DataPlane:
    """Load the chosen versions from the registry and return a ready data plane that follows
    no registry (no model manager: the versions stay as loaded, management is off).

    Versions are loaded as a server loads them (`VersionLoader`): one that fails to load or to
    warm up is refused and shows in the model's `load_failures`; the others are served.

    Args:
        registry: a `maas.registry.store.Registry` (or anything with its read methods).
        models: `NAME[@REF]` to serve; None serves the serve file's list, else every registered
            model (its `production` alias, else its latest version).
        serving_config: limits and batching policies; defaults when None.
        metrics_registry: where metrics are registered; a fresh one when None.

    Raises:
        MaasError: versions were chosen but none could be loaded (the first failure).

    Call `close()` on the result to stop its worker threads.
    """
    config = serving_config or ServingConfig()
    metrics = ServingMetrics(
        metrics_registry or CollectorRegistry(auto_describe=True),
        multiprocess_dir=config.metrics_dir,
    )
    rollout = RolloutMetrics(metrics.registry)
    loader = VersionLoader(registry, config, metrics, rollout)
    loaded: list[LoadedVersion] = []
    try:
        for mv in select_versions(registry, models, config):
            item = loader.load(mv)
            if item is not None:
                loaded.append(item)
    except BaseException:
        for item in loaded:
            item.stop()
        raise
    if not loaded and loader.failures:
        raise next(iter(loader.failures.values())).error
    repository = ModelRepository(loaded, failures=loader.reasons())
    return DataPlane(repository, metrics, config, rollout=rollout)


@dataclass(frozen=True)
class Serving:
    """A data plane and the model manager that keeps it in step with the registry."""

    data_plane: DataPlane
    manager: ModelManager


def build_serving(
    registry: Registry,
    config: ServingConfig,
    models: Sequence[str] | None = None,
    metrics_registry: CollectorRegistry | None = None,
) -> Serving:
    """A data plane with a model manager following `registry` (its `control`).

    Nothing is loaded yet: `await manager.start()` loads what the registry plans, the same way
    every later pick-up loads. Stop the manager, then close the data plane.
    """
    metrics = ServingMetrics(
        metrics_registry or CollectorRegistry(auto_describe=True),
        multiprocess_dir=config.metrics_dir,
    )
    rollout = RolloutMetrics(metrics.registry)
    trips = GuardTrips(registry, rollout)
    repository = ModelRepository(on_trip=trips.record)
    loader = VersionLoader(registry, config, metrics, rollout)
    manager = ModelManager(registry, repository, loader, trips, models)
    data_plane = DataPlane(repository, metrics, config, rollout=rollout, control=manager)
    return Serving(data_plane, manager)


class Server:
    """The REST and gRPC servers of one data plane, started and stopped together.

    Args:
        data_plane: what both transports call; the caller closes it after `stop()`.
        host: interface to bind (127.0.0.1 by default; 0.0.0.0 is opt-in).
        http_port: REST port, 0 for a free one.
        grpc_port: gRPC port, 0 for a free one, None for no gRPC.
        protection: authentication, limits and TLS of both servers (None: open, plain).
        shares_port: other worker processes serve the same ports (`maas serve --workers N`).
    """

    def __init__(
        self,
        data_plane: DataPlane,
        *,
        host: str = "127.0.0.1",
        http_port: int = 8000,
        grpc_port: int | None = 8001,
        protection: Protection | None = None,
        shares_port: bool = False,
    ) -> None:
        self._data_plane = data_plane
        self._host = host
        self._protection = protection
        self._shares_port = shares_port
        self._rest = RestServer(
            data_plane, host, http_port, protection=protection, shares_port=shares_port
        )
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
            self._data_plane,
            host=self._host,
            port=self._grpc_port,
            protection=self._protection,
            shares_port=self._shares_port,
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


@dataclass(frozen=True)
class ServerParts:
    """Everything `maas serve` runs, as `build_server` wired it."""

    registry: Registry
    config: ServingConfig
    data_plane: DataPlane
    manager: ModelManager
    server: Server


def build_server(
    settings: Settings, models: Sequence[str] | None, *, shares_port: bool = False
) -> ServerParts:
    """The composition root of `maas serve`: build every object and hand each what it uses.

    Nothing is loaded or bound yet: start the manager (it loads what the registry plans), then
    the server; stop them in the other order, then close the data plane. `shares_port`: the
    server is one of the workers of `maas serve --workers N`.
    """
    from maas.registry.store import Registry
    from maas.security.signing import required_verifier

    verifier = required_verifier(settings.security)
    registry = Registry.from_settings(settings, signature_verifier=verifier)
    config = ServingConfig.from_settings(settings.serve)
    serving = build_serving(registry, config, models)
    server = Server(
        serving.data_plane,
        host=settings.serve.host,
        http_port=settings.serve.http_port,
        grpc_port=settings.serve.grpc_port,
        protection=Protection.from_settings(settings, registry),
        shares_port=shares_port,
    )
    return ServerParts(registry, config, serving.data_plane, serving.manager, server)


async def serve_until_signalled(
    settings: Settings,
    models: Sequence[str] | None,
    *,
    on_started: Callable[[Server], None],
    shares_port: bool = False,
) -> None:
    """Run `maas serve`: load from the registry, serve until SIGINT/SIGTERM, stop cleanly.

    `shares_port`: this is one of the workers of `maas serve --workers N` (see `workers.py`).
    """
    parts = build_server(settings, models, shares_port=shares_port)
    server, manager, data_plane = parts.server, parts.manager, parts.data_plane
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await manager.start()  # loads what the registry plans, as every pick-up does
        await server.start()
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
        await server.stop(parts.config.grace_period_s)
        data_plane.close()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
