"""Checks of a request against a model's signature, before anything is queued."""

from __future__ import annotations

import functools
import math

import numpy as np

from maas.errors import InvalidInput, ShapeMismatch
from maas.protocol.types import InferRequest, InferTensor, RequestedOutput
from maas.signature import V2_TO_NUMPY, Signature, TensorSpec


def shape_text(shape: tuple[int, ...] | list[int]) -> str:
    """`[3, 5]`, the way messages print shapes."""
    return "[" + ", ".join(str(d) for d in shape) + "]"


def check_inputs(
    request: InferRequest,
    signature: Signature,
    *,
    label: str,
    max_batch_size: int,
    is_batchable: bool,
) -> tuple[dict[str, np.ndarray], int]:
    """Match the request's inputs to the signature; return the arrays by name and the row count.

    Raises:
        InvalidInput: missing, unknown or repeated inputs; a batch over `max_batch_size`.
        ShapeMismatch: a datatype, rank, fixed dimension or element count that does not fit.
    """
    specs = input_specs(signature)
    arrays: dict[str, np.ndarray] = {}
    for tensor in request.inputs:
        spec = specs.get(tensor.name)
        if spec is None:
            expected = ", ".join(f'"{n}"' for n in specs)
            raise InvalidInput(f'unknown input "{tensor.name}"; model {label} takes {expected}')
        if tensor.name in arrays:
            raise InvalidInput(f'input "{tensor.name}" is given twice')
        arrays[tensor.name] = check_tensor(tensor, spec, label)
    missing = [name for name in specs if name not in arrays]
    if missing:
        names = ", ".join(f'"{n}"' for n in missing)
        raise InvalidInput(f"missing input {names} for model {label}")
    rows = _rows(arrays, label, is_batchable)
    if rows > max_batch_size:
        raise InvalidInput(
            f"batch of {rows} rows is over the limit of model {label} (max_batch_size "
            f"{max_batch_size}); split the request"
        )
    return arrays, rows


@functools.lru_cache(maxsize=256)
def input_specs(signature: Signature) -> dict[str, TensorSpec]:
    """The signature's inputs by name (cached: it is looked up on every request)."""
    return {spec.name: spec for spec in signature.inputs}


def check_tensor(tensor: InferTensor, spec: TensorSpec, label: str) -> np.ndarray:
    """One input's datatype, shape and element count; returns its data in that shape."""
    if tensor.datatype != spec.datatype:
        raise ShapeMismatch(
            f'input "{tensor.name}" has datatype {tensor.datatype}; '
            f"model {label} expects {spec.datatype}"
        )
    shape = tensor.shape
    fits = len(shape) == len(spec.shape) and all(
        want in (-1, got) for got, want in zip(shape, spec.shape, strict=True)
    )
    if not fits or any(d < 0 for d in shape):
        raise ShapeMismatch(
            f'input "{tensor.name}" has shape {shape_text(shape)}; '
            f"model {label} expects {shape_text(spec.shape)}"
        )
    data = tensor.data
    count = math.prod(shape)
    if data.size != count:
        raise ShapeMismatch(
            f'input "{tensor.name}" has {data.size} elements but its shape '
            f"{shape_text(shape)} needs {count}"
        )
    dtype = V2_TO_NUMPY[spec.datatype]
    if data.dtype != dtype:
        try:
            data = data.astype(dtype)
        except (TypeError, ValueError) as err:
            raise ShapeMismatch(
                f'input "{tensor.name}" data cannot be read as {spec.datatype}'
            ) from err
    if data.shape != shape:
        try:
            data = data.reshape(shape)
        except ValueError as err:  # e.g. [0, 2**62, 2**62]: no elements, yet too big for numpy
            raise ShapeMismatch(
                f'input "{tensor.name}" has shape {shape_text(shape)}, which is too large'
            ) from err
    return data


def _rows(arrays: dict[str, np.ndarray], label: str, is_batchable: bool) -> int:
    if not is_batchable:
        return 1
    rows = {name: array.shape[0] for name, array in arrays.items()}
    counts = set(rows.values())
    if len(counts) > 1:
        detail = ", ".join(f'"{n}": {r}' for n, r in rows.items())
        raise ShapeMismatch(f"inputs of model {label} disagree on the batch size ({detail})")
    count = int(counts.pop())
    if count < 1:
        raise ShapeMismatch(f"model {label} needs at least one row per request")
    return count


def check_outputs(
    requested: tuple[RequestedOutput, ...] | None, signature: Signature, label: str
) -> tuple[RequestedOutput, ...]:
    """The outputs to return, in order: the requested ones, else every output of the model.

    Raises:
        InvalidInput: more outputs named than the model has, one named twice, an unknown one,
            or a negative classification.
    """
    if requested is None or not requested:
        return all_outputs(signature)
    names = [spec.name for spec in signature.outputs]
    check_output_names(requested, len(names), label)
    for output in requested:
        if output.name not in names:
            expected = ", ".join(f'"{n}"' for n in names)
            raise InvalidInput(f'unknown output "{output.name}"; model {label} gives {expected}')
        if output.classification < 0:
            raise InvalidInput(f'output "{output.name}": classification must be >= 0')
    return requested


def check_output_names(requested: tuple[RequestedOutput, ...], most: int, label: str) -> None:
    """Each output named at most once, and no more than `most` of them: an answer holds each
    output once, so a request cannot make it grow by naming one many times.

    Raises:
        InvalidInput: more than `most` outputs are named, or one is named twice.
    """
    if len(requested) > most:
        raise InvalidInput(
            f"{len(requested)} outputs requested; model {label} has {most}: name each output "
            "at most once"
        )
    seen: set[str] = set()
    for output in requested:
        if output.name in seen:
            raise InvalidInput(
                f'output "{output.name}" is requested twice; name each output at most once'
            )
        seen.add(output.name)


@functools.lru_cache(maxsize=256)
def all_outputs(signature: Signature) -> tuple[RequestedOutput, ...]:
    """Every output of the signature, as asked for by a request naming none (cached)."""
    return tuple(RequestedOutput(spec.name) for spec in signature.outputs)
