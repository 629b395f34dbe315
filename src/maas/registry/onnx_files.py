"""Checking a user's own ONNX file before registering it: it must load and run on sample inputs."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from maas.errors import InvalidInput, ValidationFailed
from maas.signature import V2_TO_NUMPY, Signature, TensorSpec, read_onnx_signature

log = logging.getLogger(__name__)

SAMPLE_SEED = 0  # sample inputs are random but the same on every run


@dataclass(frozen=True)
class CheckedOnnx:
    """An ONNX file that loaded and ran: its bytes and the signature read from it."""

    artifact: bytes
    signature: Signature


def check_onnx_file(path: Path) -> CheckedOnnx:
    """Load `path` in onnxruntime and run it once on random inputs made from its signature.

    Dynamic dimensions become 1 in the sample inputs.

    Raises:
        InvalidInput: the file cannot be read.
        ValidationFailed: onnxruntime cannot load or run it (names the file and the error).
    """
    import onnxruntime as ort

    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise InvalidInput(f"cannot read ONNX file {path}: {err}") from err
    try:
        signature = read_onnx_signature(data)
        session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
        feeds = {spec.name: sample_input(spec) for spec in signature.inputs}
        session.run(None, feeds)
    except Exception as err:  # onnxruntime raises its own exception types for any bad model
        raise ValidationFailed(
            f"ONNX file {path} failed to load or run in onnxruntime: {err}"
        ) from err
    log.debug("onnx.checked", extra={"path": str(path)})
    return CheckedOnnx(artifact=data, signature=signature)


def sample_input(spec: TensorSpec) -> np.ndarray[Any, Any]:
    """A random array with the spec's datatype and shape (dynamic dimensions set to 1)."""
    shape = tuple(d if d >= 0 else 1 for d in spec.shape)
    rng = np.random.default_rng(SAMPLE_SEED)
    dtype = V2_TO_NUMPY.get(spec.datatype)
    if dtype is None:
        raise ValidationFailed(f'input "{spec.name}" has unsupported type {spec.datatype}')
    if spec.datatype == "BYTES":
        return np.full(shape, "sample", dtype=object)
    if spec.datatype == "BOOL":
        return rng.integers(0, 2, size=shape).astype(bool)
    if np.issubdtype(np.dtype(dtype), np.integer):
        return rng.integers(0, 2, size=shape).astype(dtype)
    return rng.standard_normal(size=shape).astype(dtype)
