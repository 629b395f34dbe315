"""Metadata, model configuration and statistics: maas values and Triton JSON -> gRPC messages."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from google.protobuf import json_format

from maas.protocol.proto import grpc_service_pb2 as pb
from maas.protocol.types import ModelMetadata, ServerMetadata
from maas.signature import TensorSpec


def encode_server_metadata(meta: ServerMetadata) -> pb.ServerMetadataResponse:
    """The `ServerMetadata` answer."""
    return pb.ServerMetadataResponse(
        name=meta.name, version=meta.version, extensions=list(meta.extensions)
    )


def encode_model_metadata(meta: ModelMetadata) -> pb.ModelMetadataResponse:
    """The `ModelMetadata` answer (lineage parameters have no field in the gRPC message)."""
    return pb.ModelMetadataResponse(
        name=meta.name,
        versions=list(meta.versions),
        platform=meta.platform,
        inputs=_tensor_metadata(meta.inputs),
        outputs=_tensor_metadata(meta.outputs),
    )


def encode_model_config(config: dict[str, Any]) -> pb.ModelConfigResponse:
    """The `ModelConfig` answer from a Triton model-configuration JSON document.

    Fields the gRPC message does not declare are left out, as Triton's own clients would ignore
    them; enum values are written as their names ("TYPE_FP32", "KIND_CPU").
    """
    message = pb.ModelConfig()
    json_format.ParseDict(config, message, ignore_unknown_fields=True)
    return pb.ModelConfigResponse(config=message)


def encode_model_statistics(stats: dict[str, Any]) -> pb.ModelStatisticsResponse:
    """The `ModelStatistics` answer from a Triton statistics JSON document (`model_stats`)."""
    message = pb.ModelStatisticsResponse()
    json_format.ParseDict(stats, message, ignore_unknown_fields=True)
    return message


def encode_repository_index(stats: dict[str, Any]) -> pb.RepositoryIndexResponse:
    """The `RepositoryIndex` answer: each version in a statistics document, as READY."""
    index = pb.RepositoryIndexResponse.ModelIndex
    return pb.RepositoryIndexResponse(
        models=[
            index(name=str(m["name"]), version=str(m["version"]), state="READY")
            for m in stats.get("model_stats", [])
        ]
    )


def _tensor_metadata(
    specs: Iterable[TensorSpec],
) -> list[pb.ModelMetadataResponse.TensorMetadata]:
    return [
        pb.ModelMetadataResponse.TensorMetadata(
            name=spec.name, datatype=spec.datatype, shape=list(spec.shape)
        )
        for spec in specs
    ]
