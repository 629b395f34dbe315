"""`Explainer`: occlusion attributions of a served version's predictions, beside inference.

The request has the shape of an inference request (one FP32 input with a batch dimension).
Each row is run together with one copy of itself per occluded feature (or block of `window`
features, set to the training mean recorded with the version, else 0): all rows of all copies
go through the version's batcher as ONE request, so one call of the model answers the whole
explanation. The response holds the model's outputs for the given rows, an `attributions`
tensor (FP32, the input's shape: the drop of the target class's score when that feature is
occluded) and a `target` tensor (INT64, one class index per row).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from maas.errors import InvalidInput, MaasError
from maas.evaluate.occlusion import attributions_from, baseline_from_lineage, occlusion_batch
from maas.protocol.types import InferRequest, InferResponse, InferTensor, RequestedOutput
from maas.serving.dataplane import DataPlane, build_output, request_timeout_s
from maas.serving.repository import LoadedVersion
from maas.serving.response_size import check_payload
from maas.serving.validation import check_inputs, check_output_names, check_outputs
from maas.signature import Signature, TensorSpec

if TYPE_CHECKING:
    from maas.serving.context import RequestContext

log = logging.getLogger(__name__)

ATTRIBUTIONS = "attributions"  # response tensor: FP32, the input's shape
TARGET = "target"  # response tensor: INT64 [rows], the class explained per row
TARGET_PARAMETER = "target"  # request parameter: class index to explain (default: predicted)
WINDOW_PARAMETER = "window"  # request parameter: features occluded together (default 1)
SCORES_PARAMETER = "output"  # request parameter: the output whose score is attributed
PREFERRED_SCORES = "probabilities"  # what maas models call their class scores
MAX_OCCLUDED_VALUES = 1 << 24  # float32 values in one explanation batch (64 MiB)


@dataclass(frozen=True)
class ExplainPlan:
    """What one explanation runs: the input, the attributed output, block size and target."""

    input_spec: TensorSpec
    scores: str
    window: int
    target: int | None


class Explainer:
    """Occlusion explanations over the versions a data plane serves.

    Args:
        data_plane: resolves versions and holds the request deadline.
    """

    def __init__(self, data_plane: DataPlane) -> None:
        self._dp = data_plane

    async def explain(self, request: InferRequest, context: RequestContext) -> InferResponse:
        """Attribute each row's prediction to its features.

        Raises:
            ModelNotFound: unknown model or version.
            InvalidInput: the model cannot be explained by occlusion, or the request does not
                fit it (nothing was queued).
            Unavailable: the version's queue is full.
            MaasError: the model failed or the deadline passed.
        """
        loaded = self._dp.repository.resolve(request.model_name, request.model_version)
        start_ns = time.perf_counter_ns()
        code = "internal"
        loaded.in_flight.count += 1
        try:
            response = await self._explain(loaded, request, context)
            code = "ok"
            return response
        except MaasError as err:
            code = err.code.value
            raise
        finally:
            loaded.in_flight.count -= 1
            loaded.metrics.on_request(context.protocol, code, time.perf_counter_ns() - start_ns)

    async def _explain(
        self, loaded: LoadedVersion, request: InferRequest, context: RequestContext
    ) -> InferResponse:
        signature = loaded.model.signature
        plan = plan_explanation(signature, request.parameters, loaded.label, loaded.is_batchable)
        arrays, rows = check_inputs(
            request,
            signature,
            label=loaded.label,
            max_batch_size=loaded.policy.max_batch_size,
            is_batchable=loaded.is_batchable,
        )
        requested = model_outputs(request.outputs, signature, loaded.label)
        x = arrays[plan.input_spec.name]
        flat = x.reshape(rows, -1).astype(np.float32, copy=False)
        n_features = flat.shape[1]
        baseline = baseline_from_lineage(loaded.model.lineage, n_features)
        parts = [occlusion_batch(row, baseline, plan.window) for row in flat]
        per_row = parts[0].shape[0]
        total = per_row * rows
        if total * n_features > MAX_OCCLUDED_VALUES:
            raise InvalidInput(
                f"explaining {rows} row(s) of {n_features} features runs {total} rows; over "
                f"the limit of {MAX_OCCLUDED_VALUES} values: send fewer rows or a larger "
                f'"{WINDOW_PARAMETER}" parameter'
            )
        batch = np.concatenate(parts).reshape(total, *x.shape[1:])
        timeout_s = request_timeout_s(request, context)
        results = await loaded.batcher.infer(
            {plan.input_spec.name: batch}, total, timeout_s=timeout_s
        )
        scores = np.asarray(results[plan.scores], dtype=np.float32).reshape(total, -1)
        targets = np.empty(rows, dtype=np.int64)
        attributions = np.empty((rows, n_features), dtype=np.float32)
        for i in range(rows):
            block = scores[i * per_row : (i + 1) * per_row]
            targets[i] = pick_target(block[0], plan.target, loaded.label)
            attributions[i] = attributions_from(block, int(targets[i]), n_features, plan.window)
        firsts = np.arange(rows) * per_row
        chosen = [(output, results[output.name][firsts]) for output in requested]
        check_payload(chosen, loaded.model.labels, self._dp.config.max_response_bytes)
        outputs = [build_output(output, array, loaded.model.labels) for output, array in chosen]
        outputs.append(InferTensor(ATTRIBUTIONS, "FP32", x.shape, attributions.reshape(x.shape)))
        outputs.append(InferTensor(TARGET, "INT64", (rows,), targets))
        log.debug("explain.done", extra={"model": loaded.label, "rows": rows, "batch": total})
        parameters = {"method": "occlusion", "window": plan.window, "scores": plan.scores}
        return InferResponse(
            loaded.name, loaded.version, tuple(outputs), id=request.id, parameters=parameters
        )


def plan_explanation(
    signature: Signature, parameters: dict[str, Any], label: str, is_batchable: bool
) -> ExplainPlan:
    """Check that the model can be explained by occlusion and read the request's parameters.

    Raises:
        InvalidInput: not one FP32 batchable input, no score output, or a bad parameter.
    """
    inputs = signature.inputs
    if len(inputs) != 1 or inputs[0].datatype != "FP32" or not is_batchable:
        raise InvalidInput(
            f"model {label} cannot be explained by occlusion: it needs one FP32 input with a "
            "batch dimension"
        )
    return ExplainPlan(
        input_spec=inputs[0],
        scores=scores_output(signature, parameters.get(SCORES_PARAMETER), label),
        window=positive_int(parameters.get(WINDOW_PARAMETER, 1), WINDOW_PARAMETER),
        target=None
        if parameters.get(TARGET_PARAMETER) is None
        else non_negative_int(parameters[TARGET_PARAMETER], TARGET_PARAMETER),
    )


def scores_output(signature: Signature, asked: Any, label: str) -> str:
    """The output whose class scores are attributed: the one asked for, `probabilities`, or
    the model's only FP32 output.

    Raises:
        InvalidInput: the asked output is not an FP32 output, or no choice is clear.
    """
    floats = [spec.name for spec in signature.outputs if spec.datatype == "FP32"]
    if asked is not None:
        if asked not in floats:
            raise InvalidInput(
                f'parameter "{SCORES_PARAMETER}" must name an FP32 output of model {label} '
                f"({', '.join(floats) or 'none'}), got {asked!r}"
            )
        return str(asked)
    if PREFERRED_SCORES in floats:
        return PREFERRED_SCORES
    if len(floats) == 1:
        return floats[0]
    raise InvalidInput(
        f"model {label} has {len(floats)} FP32 outputs; name the one to attribute with the "
        f'"{SCORES_PARAMETER}" parameter'
    )


def pick_target(scores: np.ndarray, asked: int | None, label: str) -> int:
    """The class to explain: the one asked for, else the highest-scoring one.

    Raises:
        InvalidInput: the asked class is not an index of the scores.
    """
    if asked is None:
        return int(np.argmax(scores))
    if asked >= scores.size:
        raise InvalidInput(
            f'parameter "{TARGET_PARAMETER}" is {asked}; model {label} scores classes '
            f"0..{scores.size - 1}"
        )
    return asked


def model_outputs(
    requested: tuple[RequestedOutput, ...] | None, signature: Signature, label: str
) -> tuple[RequestedOutput, ...]:
    """The model's outputs to return: those asked for (attributions and target always come).

    Raises:
        InvalidInput: an output is named twice, or more outputs are named than the answer has.
    """
    if requested is not None:
        check_output_names(requested, len(signature.outputs) + 2, label)
        requested = tuple(o for o in requested if o.name not in (ATTRIBUTIONS, TARGET))
    return check_outputs(requested, signature, label)


def positive_int(value: Any, name: str) -> int:
    """A request parameter that must be an integer of at least 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInput(f'parameter "{name}" must be a positive integer, got {value!r}')
    return value


def non_negative_int(value: Any, name: str) -> int:
    """A request parameter that must be an integer of at least 0."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInput(f'parameter "{name}" must be an integer >= 0, got {value!r}')
    return value
