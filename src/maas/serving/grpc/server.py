"""`GrpcServer`: the Open Inference Protocol v2 over grpc.aio, with health and reflection."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

import grpc
from google.protobuf import descriptor_pool
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2

from maas.errors import MaasError
from maas.protocol.proto import grpc_service_pb2 as pb
from maas.protocol.proto import grpc_service_pb2_grpc as pb_grpc
from maas.serving.admission import Admission
from maas.serving.grpc.auth import bind_port, server_options
from maas.serving.grpc.servicer import InferenceServicer

if TYPE_CHECKING:
    from maas.serving.dataplane import DataPlane
    from maas.serving.protection import Protection

log = logging.getLogger(__name__)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024  # a 16M-element FP32 tensor; tensors beyond go raw
HEALTH_POLL_S = 1.0  # how often the health service re-reads the data plane's readiness


class GrpcServer:
    """Serves `inference.GRPCInferenceService`, `grpc.health.v1.Health` and server reflection on
    one port, all answered from one `DataPlane`.

    Args:
        data_plane: answers every inference, metadata and health question.
        host: the address to listen on (127.0.0.1 by default; 0.0.0.0 is opt-in).
        port: the port; 0 asks the system for a free one (read it back from `port`).
        max_message_bytes: the largest request or response message accepted.
        health_poll_s: how often the health service's status follows the data plane's readiness.
        protection: authentication, limits and TLS (None: open, plain).
        shares_port: other worker processes serve the same port (`maas serve --workers N`):
            bind with SO_REUSEPORT.
    """

    def __init__(
        self,
        data_plane: DataPlane,
        host: str = "127.0.0.1",
        port: int = 8001,
        *,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        health_poll_s: float = HEALTH_POLL_S,
        protection: Protection | None = None,
        shares_port: bool = False,
    ) -> None:
        if max_message_bytes < 1:
            raise MaasError(f"max_message_bytes must be positive, got {max_message_bytes}")
        self._data_plane = data_plane
        self._host = host
        self._requested_port = port
        self._max_message_bytes = max_message_bytes
        self._health_poll_s = health_poll_s
        self._protection = protection
        self._shares_port = shares_port
        self._server: grpc.aio.Server | None = None
        self._health: health.aio.HealthServicer | None = None
        self._health_task: asyncio.Task[None] | None = None
        self._port: int | None = None

    @property
    def port(self) -> int:
        """The bound port (also when 0 was asked); only known once `start()` returned."""
        if self._port is None:
            raise MaasError("the gRPC server is not started; call start() first")
        return self._port

    async def start(self) -> None:
        """Bind the port, start serving and follow the data plane's readiness in the health
        service.

        Raises:
            MaasError: the address could not be bound.
        """
        if self._server is not None:
            return
        server = grpc.aio.server(
            # the guard interceptor (the same admission as REST) and the call cap
            **server_options(
                self._protection,
                Admission(self._protection, self._data_plane.config.max_request_bytes),
            ),
            options=[
                ("grpc.max_receive_message_length", self._max_message_bytes),
                ("grpc.max_send_message_length", self._max_message_bytes),
                # a port is shared only by the workers of one `maas serve --workers N`
                ("grpc.so_reuseport", int(self._shares_port)),
            ],
        )
        servicer = InferenceServicer(self._data_plane)
        pb_grpc.add_GRPCInferenceServiceServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]  # generated
        self._health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME),
            server,
            pool=_reflection_pool(),
        )
        address = (
            f"[{self._host}]:{self._requested_port}"
            if ":" in self._host
            else (f"{self._host}:{self._requested_port}")
        )
        try:
            port = bind_port(server, address, self._protection)
        except RuntimeError as err:
            raise MaasError(f"cannot listen for gRPC on {address}: {err}") from err
        if port == 0:
            raise MaasError(f"cannot listen for gRPC on {address}; is the port in use?")
        await server.start()
        self._server, self._port = server, port
        await self._update_health()
        self._health_task = asyncio.create_task(self._follow_readiness())
        log.info("grpc.started", extra={"host": self._host, "port": port})

    async def stop(self, grace_s: float = 5.0) -> None:
        """Report NOT_SERVING, let calls in flight finish for up to `grace_s`, then close."""
        if self._server is None:
            return
        if self._health_task is not None:
            self._health_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._health_task
            self._health_task = None
        if self._health is not None:
            await self._health.enter_graceful_shutdown()
        await self._server.stop(grace_s)
        self._server = None
        log.info("grpc.stopped", extra={"port": self._port})

    async def _follow_readiness(self) -> None:
        while True:
            await asyncio.sleep(self._health_poll_s)
            try:
                await self._update_health()
            except Exception:  # a bug in ready() must not end health reporting
                log.exception("grpc.health_update_failed")

    async def _update_health(self) -> None:
        if self._health is None:
            return
        try:
            ready = await self._data_plane.ready()
        except MaasError:
            ready = False
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if ready
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        await self._health.set("", status)
        await self._health.set(SERVICE_NAME, status)


def _reflection_pool() -> descriptor_pool.DescriptorPool:
    """A descriptor pool that holds every service this server answers.

    The inference messages live in a private pool (they share names with tritonclient's), so
    reflection gets its own pool with those files and the health and reflection protocols.
    """
    pool = descriptor_pool.DescriptorPool()
    for file in (health_pb2.DESCRIPTOR, reflection_pb2.DESCRIPTOR, pb.DESCRIPTOR):
        pool.AddSerializedFile(file.serialized_pb)
    return pool
