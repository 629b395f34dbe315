"""Transport-neutral inference types shared by REST, gRPC and the data plane.

Tensors travel between layers already decoded to numpy arrays; each transport owns its codec.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from maas.signature import TensorSpec


@dataclass(frozen=True)
class InferTensor:
    """One named tensor of a request or response. `data` has the numpy dtype of `datatype`
    (BYTES tensors are object arrays of `bytes`) and exactly `shape`."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    data: np.ndarray
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RequestedOutput:
    """An output the client asked for; `classification` > 0 asks for top-k class strings."""

    name: str
    binary_data: bool | None = None
    classification: int = 0
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class InferRequest:
    """A v2 inference request. `outputs` None means every output of the model."""

    model_name: str
    model_version: str | None
    inputs: tuple[InferTensor, ...]
    outputs: tuple[RequestedOutput, ...] | None = None
    id: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class InferResponse:
    """A v2 inference response; `model_version` names the version that answered."""

    model_name: str
    model_version: str
    outputs: tuple[InferTensor, ...]
    id: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ServerMetadata:
    """`GET /v2` and gRPC ServerMetadata."""

    name: str
    version: str
    extensions: tuple[str, ...]


@dataclass(frozen=True)
class ModelMetadata:
    """`GET /v2/models/{m}[/versions/{v}]` and gRPC ModelMetadata; lineage goes in `parameters`."""

    name: str
    versions: tuple[str, ...]
    platform: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    parameters: dict[str, Any] = field(default_factory=dict)
