"""gRPC fixtures: a real GrpcServer on 127.0.0.1 port 0 over the real data plane, and clients."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
import tritonclient.grpc.aio as triton_aio

from maas.protocol.proto import grpc_service_pb2_grpc as pb_grpc
from maas.serving.dataplane import DataPlane
from maas.serving.grpc.server import GrpcServer


@pytest.fixture
async def grpc_server(data_plane: DataPlane) -> AsyncIterator[GrpcServer]:
    server = GrpcServer(data_plane, host="127.0.0.1", port=0, health_poll_s=0.05)
    await server.start()
    yield server
    await server.stop(grace_s=1.0)


@pytest.fixture
async def channel(grpc_server: GrpcServer) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{grpc_server.port}") as chan:
        yield chan


@pytest.fixture
def stub(channel: grpc.aio.Channel) -> pb_grpc.GRPCInferenceServiceStub:
    """Our own generated stub: sends messages tritonclient cannot (typed contents, bad ones)."""
    return pb_grpc.GRPCInferenceServiceStub(channel)


@pytest.fixture
async def triton(grpc_server: GrpcServer) -> AsyncIterator[triton_aio.InferenceServerClient]:
    client = triton_aio.InferenceServerClient(f"127.0.0.1:{grpc_server.port}")
    yield client
    await client.close()
