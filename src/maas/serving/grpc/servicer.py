"""`inference.GRPCInferenceService`: thin handlers that decode, call the data plane and encode."""

# ruff: noqa: N802  # method names are the RPC names of the protocol

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, NoReturn, TypeAlias

import grpc

from maas.protocol.proto import grpc_service_pb2 as pb
from maas.protocol.proto import grpc_service_pb2_grpc as pb_grpc
from maas.serving.context import RequestContext, RequestIds
from maas.serving.grpc.codec import answers_raw, decode_infer_request, encode_infer_response
from maas.serving.grpc.documents import (
    encode_model_config,
    encode_model_metadata,
    encode_model_statistics,
    encode_repository_index,
    encode_server_metadata,
)
from maas.serving.grpc.status import log_bug, maps_errors
from maas.serving.grpc.stream import answer_stream
from maas.serving.response_size import Encoding, check_encoded

if TYPE_CHECKING:
    from maas.serving.dataplane import DataPlane

Context: TypeAlias = grpc.aio.ServicerContext


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    """Answers the Open Inference Protocol v2 RPCs (and Triton's config and statistics) from one
    `DataPlane`. A `MaasError` becomes the status its code maps to; anything else is a bug, logged
    with a request id that the client also gets."""

    def __init__(self, data_plane: DataPlane) -> None:
        self._data_plane = data_plane
        self._request_id = RequestIds()

    @maps_errors
    async def ServerLive(
        self, request: pb.ServerLiveRequest, context: Context
    ) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=await self._data_plane.live())

    @maps_errors
    async def ServerReady(
        self, request: pb.ServerReadyRequest, context: Context
    ) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=await self._data_plane.ready())

    @maps_errors
    async def ModelReady(
        self, request: pb.ModelReadyRequest, context: Context
    ) -> pb.ModelReadyResponse:
        ready = await self._data_plane.model_ready(request.name, request.version or None)
        return pb.ModelReadyResponse(ready=ready)

    @maps_errors
    async def ServerMetadata(
        self, request: pb.ServerMetadataRequest, context: Context
    ) -> pb.ServerMetadataResponse:
        return encode_server_metadata(self._data_plane.server_metadata())

    @maps_errors
    async def ModelMetadata(
        self, request: pb.ModelMetadataRequest, context: Context
    ) -> pb.ModelMetadataResponse:
        meta = self._data_plane.model_metadata(request.name, request.version or None)
        return encode_model_metadata(meta)

    @maps_errors
    async def ModelInfer(
        self, request: pb.ModelInferRequest, context: Context
    ) -> pb.ModelInferResponse:
        return await self._infer(request, context)

    async def ModelStreamInfer(
        self, request_iterator: AsyncIterator[pb.ModelInferRequest], context: Context
    ) -> AsyncIterator[pb.ModelStreamInferResponse]:
        """Answers the requests of a stream concurrently, each as it finishes (see stream.py)."""

        async def infer(request: pb.ModelInferRequest) -> pb.ModelInferResponse:
            return await self._infer(request, context)

        async for response in answer_stream(request_iterator, infer, log_bug):
            yield response

    @maps_errors
    async def ModelConfig(
        self, request: pb.ModelConfigRequest, context: Context
    ) -> pb.ModelConfigResponse:
        config = self._data_plane.model_config(request.name, request.version or None)
        return encode_model_config(config)

    @maps_errors
    async def ModelStatistics(
        self, request: pb.ModelStatisticsRequest, context: Context
    ) -> pb.ModelStatisticsResponse:
        stats = self._data_plane.model_statistics(request.name or None, request.version or None)
        return encode_model_statistics(stats)

    @maps_errors
    async def RepositoryIndex(
        self, request: pb.RepositoryIndexRequest, context: Context
    ) -> pb.RepositoryIndexResponse:
        """Every loaded version, READY (a version is listed only once it is loaded)."""
        stats = self._data_plane.model_statistics(None, None)
        return encode_repository_index(stats)

    @maps_errors
    async def RepositoryModelLoad(
        self, request: pb.RepositoryModelLoadRequest, context: Context
    ) -> pb.RepositoryModelLoadResponse:
        """Serve a model (again) through the model manager; its failed versions are retried."""
        control = self._data_plane.control
        if control is None:  # a data plane without a registry to follow
            await _unimplemented(context, "RepositoryModelLoad")
        await control.load_model(request.model_name)
        return pb.RepositoryModelLoadResponse()

    @maps_errors
    async def RepositoryModelUnload(
        self, request: pb.RepositoryModelUnloadRequest, context: Context
    ) -> pb.RepositoryModelUnloadResponse:
        """Stop serving a model; its in-flight requests finish first."""
        control = self._data_plane.control
        if control is None:
            await _unimplemented(context, "RepositoryModelUnload")
        await control.unload_model(request.model_name)
        return pb.RepositoryModelUnloadResponse()

    async def _infer(
        self, request: pb.ModelInferRequest, context: Context
    ) -> pb.ModelInferResponse:
        """One inference under the call's deadline (the server's request timeout at most)."""
        timeout_s = self._data_plane.config.request_timeout_s
        remaining_s = context.time_remaining()
        if remaining_s is not None:
            timeout_s = min(timeout_s, remaining_s)
        request_id = self._request_id(request.id)
        infer_request = decode_infer_request(request)
        call = RequestContext.starting_now(request_id, "grpc", timeout_s)
        response = await self._data_plane.infer(infer_request, call)
        raw = len(request.raw_input_contents) > 0
        encoding = Encoding.RAW if answers_raw(response, raw=raw) else Encoding.PROTO
        check_encoded(response, self._data_plane.config.max_response_bytes, encoding)
        return encode_infer_response(response, raw=raw)


async def _unimplemented(context: Context, method: str) -> NoReturn:
    await context.abort(
        grpc.StatusCode.UNIMPLEMENTED,
        f"{method} is not supported: maas serves the models of its registry; register a version "
        "or move an alias instead",
    )
    raise AssertionError("unreachable: context.abort raises")  # pragma: no cover
