"""JSON tensors as TF Serving, SageMaker and TorchServe clients send them, to and from v2 tensors.

Two layouts exist: the row format (`instances`: one item per example; with several inputs each
item is an object of named values) and the columnar format (`inputs`: one value per input for
the whole batch, or a bare value for a single-input model). Datatypes come from the model's
signature, so `[[1, 2]]` becomes FP32 for an FP32 input.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from maas.errors import InvalidInput
from maas.protocol.types import InferRequest, InferResponse, InferTensor
from maas.signature import V2_TO_NUMPY, TensorSpec


def columns_from_instances(instances: Any, specs: Sequence[TensorSpec]) -> dict[str, list[Any]]:
    """Row format -> one list of rows per input."""
    if not isinstance(instances, list) or not instances:
        raise InvalidInput('"instances" must be a non-empty list')
    names = [spec.name for spec in specs]
    if len(specs) == 1 and not isinstance(instances[0], dict):
        return {names[0]: instances}
    columns: dict[str, list[Any]] = {name: [] for name in names}
    for index, instance in enumerate(instances):
        if not isinstance(instance, dict):
            raise InvalidInput(
                f"instance {index} must be an object of named inputs ({', '.join(names)})"
            )
        _check_names(instance, names, f"instance {index}")
        for name in names:
            columns[name].append(instance[name])
    return columns


def columns_from_inputs(inputs: Any, specs: Sequence[TensorSpec]) -> dict[str, Any]:
    """Columnar format -> one value per input."""
    names = [spec.name for spec in specs]
    if isinstance(inputs, dict) and (len(specs) > 1 or set(inputs) == set(names)):
        _check_names(inputs, names, '"inputs"')
        return dict(inputs)
    if len(specs) != 1:
        raise InvalidInput(f'"inputs" must be an object naming every input: {", ".join(names)}')
    return {names[0]: inputs}


def build_request(
    model: str, version: str | None, columns: Mapping[str, Any], specs: Sequence[TensorSpec]
) -> InferRequest:
    """A v2 request from per-input JSON values, typed by the signature."""
    tensors = []
    for spec in specs:
        array = to_array(columns[spec.name], spec)
        tensors.append(InferTensor(spec.name, spec.datatype, array.shape, array))
    return InferRequest(model, version, tuple(tensors))


def to_array(value: Any, spec: TensorSpec) -> np.ndarray:
    """One input's JSON value as an array of its signature's datatype."""
    if spec.datatype == "BYTES":
        return _bytes_array(value, spec.name)
    try:
        array = np.asarray(value, dtype=V2_TO_NUMPY[spec.datatype])
    except (TypeError, ValueError, OverflowError) as err:
        message = f'input "{spec.name}" cannot be read as {spec.datatype}: {err}'
        raise InvalidInput(message) from None
    return array


def output_values(response: InferResponse) -> dict[str, Any]:
    """Output name -> nested JSON lists (strings for BYTES)."""
    return {tensor.name: _json_value(tensor.data) for tensor in response.outputs}


def output_rows(response: InferResponse) -> list[Any]:
    """Row format answers: one item per example; an object of outputs when there are several."""
    values = output_values(response)
    if len(values) == 1:
        (only,) = values.values()
        return list(only) if isinstance(only, list) else [only]
    rows = max((len(v) for v in values.values() if isinstance(v, list)), default=1)
    return [
        {name: value[index] if isinstance(value, list) else value for name, value in values.items()}
        for index in range(rows)
    ]


def _json_value(array: np.ndarray) -> Any:
    if array.dtype == object:
        decoded = np.vectorize(
            lambda item: item.decode(errors="replace") if isinstance(item, bytes) else str(item),
            otypes=[object],
        )(array)
        return decoded.tolist()
    return array.tolist()


def _bytes_array(value: Any, name: str) -> np.ndarray:
    def convert(item: Any) -> Any:
        if isinstance(item, list):
            return [convert(x) for x in item]
        if isinstance(item, dict) and set(item) == {"b64"}:
            try:
                return base64.b64decode(item["b64"], validate=True)
            except (binascii.Error, TypeError) as err:
                raise InvalidInput(f'input "{name}" has invalid base64: {err}') from None
        if isinstance(item, str):
            return item.encode()
        raise InvalidInput(f'input "{name}" needs strings or {{"b64": ...}} objects')

    converted = convert(value)
    array = np.empty(np.shape(converted), dtype=object) if converted else np.empty(0, object)
    array[...] = converted
    return array


def _check_names(given: Mapping[str, Any], names: Sequence[str], where: str) -> None:
    missing = [name for name in names if name not in given]
    unknown = sorted(set(given) - set(names))
    if missing or unknown:
        raise InvalidInput(
            f"{where} must name the inputs {', '.join(names)}"
            + (f"; missing {', '.join(missing)}" if missing else "")
            + (f"; unknown {', '.join(unknown)}" if unknown else "")
        )
