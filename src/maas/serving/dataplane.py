"""`DataPlane`: health, metadata, inference, configuration and statistics for every transport.

REST and gRPC decode their wire formats into `maas.protocol.types` and call this class; it
validates each request against the model's signature before queueing it, runs it through the
version's batcher and builds the response (requested outputs, classification strings).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import numpy as np

import maas
from maas.errors import DeadlineExceeded, ErrorCode, InvalidInput, MaasError, ModelNotFound
from maas.metrics.prometheus import UNKNOWN_MODEL, ServingMetrics
from maas.metrics.rollout import RolloutMetrics
from maas.protocol.tensors import v2_datatype
from maas.protocol.types import (
    InferRequest,
    InferResponse,
    InferTensor,
    ModelMetadata,
    RequestedOutput,
    ServerMetadata,
)
from maas.serving.options import ServingConfig
from maas.serving.repository import LoadedVersion, ModelRepository
from maas.serving.response_size import check_payload
from maas.serving.shadow import ShadowTraffic
from maas.serving.validation import check_inputs, check_outputs
from maas.signature import Signature

if TYPE_CHECKING:
    from maas.serving.context import RequestContext
    from maas.serving.manager import ModelManager

log = logging.getLogger(__name__)

SERVER_NAME = "maas"
PLATFORM = "onnxruntime_onnx"  # Triton's name for ONNX models, which its clients expect
EXTENSIONS = (
    "binary_tensor_data",
    "classification",
    "model_configuration",
    "statistics",
)
TIMEOUT_PARAMETER = "timeout"  # request parameter, microseconds, as Triton's clients send it
# Outcomes that count against a route guard: the server's failures, not the client's mistakes.
GUARD_ERROR_CODES = frozenset(
    {ErrorCode.INTERNAL.value, ErrorCode.DEADLINE_EXCEEDED.value, ErrorCode.UNAVAILABLE.value}
)


class DataPlane:
    """The protocol-agnostic core of a server.

    Args:
        repository: the loaded versions.
        metrics: the server's metric families.
        config: limits and policies.
        rollout: the roll-out metric families (registered in `metrics.registry` when None).
        control: the model manager following the registry, which the management endpoints
            call (None: they answer 503).
    """

    def __init__(
        self,
        repository: ModelRepository,
        metrics: ServingMetrics,
        config: ServingConfig,
        *,
        rollout: RolloutMetrics | None = None,
        control: ModelManager | None = None,
    ) -> None:
        self.repository = repository
        self.metrics = metrics
        self.config = config
        self._is_closed = False
        self._is_stopping = False
        self.rollout = rollout if rollout is not None else RolloutMetrics(metrics.registry)
        self._control = control
        self.shadow = ShadowTraffic(self.rollout, config.request_timeout_s)
        metrics.models_loaded.set(len(repository))

    @property
    def control(self) -> ModelManager | None:
        """The model manager the management endpoints call (None: management is off)."""
        return self._control

    # -- health and metadata -------------------------------------------------------------

    async def live(self) -> bool:
        """The process answers."""
        return True

    async def ready(self) -> bool:
        """Every configured version is loaded and the server is not stopping."""
        return not self._is_closed and not self._is_stopping

    def begin_shutdown(self) -> None:
        """Report not ready (load balancers stop sending) while in-flight requests finish."""
        self._is_stopping = True

    async def model_ready(self, name: str, version: str | None) -> bool:
        """The version (or the model's default) is loaded and answering."""
        if self._is_closed:
            return False
        try:
            self.repository.peek(name, version)
        except ModelNotFound:
            return False
        return True

    def signature(self, name: str, version: str | None) -> Signature:
        """The signature of a version (the model's default when `version` is None)."""
        return self.repository.peek(name, version).model.signature

    def server_metadata(self) -> ServerMetadata:
        """Name, version and the protocol extensions this server speaks."""
        return ServerMetadata(SERVER_NAME, maas.__version__, EXTENSIONS)

    def model_metadata(self, name: str, version: str | None) -> ModelMetadata:
        """Signature and lineage of a version (the model's default when `version` is None)."""
        loaded = self.repository.peek(name, version)
        mv = loaded.model
        versions = (loaded.version,) if version else self.repository.version_names(name)
        parameters: dict[str, Any] = {
            "registry_version": mv.version,
            "digest": mv.digest,
            "size_bytes": mv.size_bytes,
            "created_at": mv.created_at.isoformat(),
            "aliases": list(mv.aliases),
            "labels": list(mv.labels),
            "metrics": dict(mv.metrics),
            "lineage": dict(mv.lineage),
        }
        parameters.update(self._serving_state(name))
        return ModelMetadata(
            name=mv.name,
            versions=versions,
            platform=PLATFORM,
            inputs=mv.signature.inputs,
            outputs=mv.signature.outputs,
            parameters=parameters,
        )

    def _serving_state(self, name: str) -> dict[str, Any]:
        """The model's route and failed loads, as metadata parameters."""
        table = self.repository.table
        route = table.routes.get(name)
        state: dict[str, Any] = {}
        if route is not None:
            split = route.picker.weights if route.picker is not None else {route.default: 100}
            state["route"] = {"default": route.default, "split": split, "shadow": route.shadow}
        failures = table.failures.get(name)
        if failures:
            state["load_failures"] = dict(failures)
        return state

    def model_config(self, name: str, version: str | None) -> dict[str, Any]:
        """The version's configuration in Triton's model-config JSON form."""
        loaded = self.repository.peek(name, version)
        policy = loaded.policy
        batchable = loaded.is_batchable

        def tensors(specs: Any) -> list[dict[str, Any]]:
            return [
                {
                    "name": spec.name,
                    "data_type": triton_type(spec.datatype),
                    "dims": list(spec.shape[1:] if batchable else spec.shape),
                }
                for spec in specs
            ]

        return {
            "name": loaded.name,
            "version": loaded.version,
            "platform": PLATFORM,
            "backend": "onnxruntime",
            "max_batch_size": policy.max_batch_size if batchable else 0,
            "input": tensors(loaded.model.signature.inputs),
            "output": tensors(loaded.model.signature.outputs),
            "dynamic_batching": {
                "preferred_batch_size": list(policy.preferred_batch_sizes),
                "max_queue_delay_microseconds": policy.max_queue_delay_us,
                "default_queue_policy": {"max_queue_size": policy.max_queue_size},
            },
            "instance_group": [{"count": policy.instances, "kind": "KIND_CPU"}],
        }

    def model_statistics(self, name: str | None, version: str | None) -> dict[str, Any]:
        """Triton statistics of one version, all versions of a model, or every loaded version."""
        if name is None:
            chosen = list(self.repository)
        elif version:
            chosen = [self.repository.peek(name, version)]
        else:
            chosen = [self.repository.resolve(name, v) for v in self.repository.version_names(name)]
        return {"model_stats": [loaded.metrics.statistics.to_dict() for loaded in chosen]}

    # -- inference -----------------------------------------------------------------------

    async def infer(self, request: InferRequest, context: RequestContext) -> InferResponse:
        """Validate, queue and run one request.

        Args:
            request: decoded by the transport.
            context: the request's id, deadline, caller and protocol (a metrics label).

        Raises:
            ModelNotFound: unknown model or version.
            InvalidInput: the request does not fit the model (nothing was queued).
            Unavailable: the version's queue is full.
            ResponseTooLarge: the outputs are over `max_response_bytes` (nothing is built).
            MaasError: the model failed or the deadline passed.
        """
        start_ns = time.perf_counter_ns()
        protocol = context.protocol
        try:
            loaded = self.repository.resolve(request.model_name, request.model_version)
        except ModelNotFound as err:
            self.metrics.count_request(UNKNOWN_MODEL, "", protocol, err.code.value)
            raise
        code = "internal"
        loaded.in_flight.count += 1
        try:
            response = await self._infer(loaded, request, context)
            code = "ok"
            return response
        except MaasError as err:
            code = err.code.value
            raise
        finally:
            loaded.in_flight.count -= 1
            duration_ns = time.perf_counter_ns() - start_ns
            loaded.metrics.on_request(protocol, code, duration_ns)
            self.repository.observe(loaded, code in GUARD_ERROR_CODES, duration_ns / 1e6)

    async def _infer(
        self, loaded: LoadedVersion, request: InferRequest, context: RequestContext
    ) -> InferResponse:
        signature = loaded.model.signature
        arrays, rows = check_inputs(
            request,
            signature,
            label=loaded.label,
            max_batch_size=loaded.policy.max_batch_size,
            is_batchable=loaded.is_batchable,
        )
        requested = check_outputs(request.outputs, signature, loaded.label)
        timeout_s = request_timeout_s(request, context)
        results = await loaded.batcher.infer(arrays, rows, timeout_s=timeout_s)
        if not request.model_version:
            shadow = self.repository.shadow_for(loaded.name)
            if shadow is not None and shadow is not loaded:
                self.shadow.submit(shadow, arrays, rows, results)
        check_payload(
            ((output, results[output.name]) for output in requested),
            loaded.model.labels,
            self.config.max_response_bytes,
        )
        outputs = tuple(
            build_output(output, results[output.name], loaded.model.labels) for output in requested
        )
        return InferResponse(loaded.name, loaded.version, outputs, id=request.id)

    def count_rejected(
        self, name: str, version: str | None, protocol: str, code: ErrorCode
    ) -> None:
        """Count a request its transport refused before `infer` (undecodable body, too large)."""
        try:
            loaded = self.repository.peek(name, version)
        except ModelNotFound:
            self.metrics.count_request(UNKNOWN_MODEL, "", protocol, code.value)
            return
        loaded.metrics.on_rejected(protocol, code.value)

    def close(self) -> None:
        """Stop answering and stop every batcher (queued requests are finished first)."""
        self._is_closed = True
        self.shadow.cancel()
        self.repository.close()
        self.metrics.models_loaded.set(0)


def request_timeout_s(request: InferRequest, context: RequestContext) -> float:
    """Seconds the request may wait: what its context has left, or its `timeout` parameter
    (microseconds, as Triton's clients send it) when that is sooner.

    Raises:
        InvalidInput: the `timeout` parameter is not a positive number.
        DeadlineExceeded: the deadline has already passed.
    """
    remaining_s = context.remaining_s()
    if remaining_s <= 0:
        raise DeadlineExceeded("the request's deadline passed before it was queued")
    value = request.parameters.get(TIMEOUT_PARAMETER)
    if value is None:
        return remaining_s
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise InvalidInput(f"parameter {TIMEOUT_PARAMETER!r} must be a positive number of µs")
    return min(float(value) / 1e6, remaining_s)


def build_output(
    output: RequestedOutput, array: np.ndarray, labels: tuple[str, ...]
) -> InferTensor:
    """One response tensor: the raw output, or its top-k class strings when asked."""
    if output.classification > 0:
        strings = classify(array, output.classification, labels)
        return InferTensor(output.name, "BYTES", strings.shape, strings)
    return InferTensor(output.name, v2_datatype(array.dtype), array.shape, array)


def classify(scores: np.ndarray, k: int, labels: tuple[str, ...]) -> np.ndarray:
    """Top-k `"score:index:label"` strings per row (`"score:index"` without labels)."""
    if scores.dtype.kind not in "fiub":
        raise InvalidInput("classification needs a numeric output")
    table = scores.reshape(scores.shape[0], -1) if scores.ndim > 1 else scores.reshape(1, -1)
    k = min(k, table.shape[1])
    order = np.argsort(-table, axis=1, kind="stable")[:, :k]
    rows: list[list[bytes]] = []
    for row, indexes in zip(table, order, strict=True):
        items = []
        for index in indexes.tolist():
            text = f"{float(row[index]):g}:{index}"
            if index < len(labels):
                text += f":{labels[index]}"
            items.append(text.encode())
        rows.append(items)
    result = np.empty((len(rows), k), dtype=object)
    result[:] = rows
    return result


def triton_type(datatype: str) -> str:
    """v2 datatype -> Triton model-config type (`FP32` -> `TYPE_FP32`, `BYTES` -> `TYPE_STRING`)."""
    return "TYPE_STRING" if datatype == "BYTES" else f"TYPE_{datatype}"
