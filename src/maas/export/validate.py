"""Prove an exported model correct before it may be registered.

Checks, in order: the ONNX graph (onnx.checker, full check, opset), the dynamic batch dimension
(batch 1 and batch N run in onnxruntime with the right output shapes), numerical parity with the
PyTorch module on held-out rows, and accuracy recomputed through onnxruntime on the test split.
A failure raises ValidationFailed naming the check and by how much it failed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from maas.errors import ValidationFailed
from maas.export.onnx import INPUT_NAME

MIN_OPSET = 18
BATCH_CHECK = 7  # an odd batch size, unlike anything used when tracing


@dataclass(frozen=True)
class ValidationReport:
    """What validation measured; every field goes into the version's metrics."""

    opset: int
    parity_max_abs_diff: float
    parity_label_agreement: float
    test_accuracy: float
    test_rows: int

    def to_metrics(self) -> dict[str, float]:
        return {
            "parity_max_abs_diff": self.parity_max_abs_diff,
            "parity_label_agreement": self.parity_label_agreement,
            "test_accuracy": self.test_accuracy,
        }


def check_graph(model_bytes: bytes) -> int:
    """Run the full ONNX checker; return the default-domain opset."""
    model = onnx.load_from_string(model_bytes)
    try:
        onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as err:
        raise ValidationFailed(f"graph check failed: {err}".splitlines()[0]) from err
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < MIN_OPSET:
        raise ValidationFailed(f"graph check failed: opset {opset} < required {MIN_OPSET}")
    return int(opset)


def open_session(model_bytes: bytes) -> ort.InferenceSession:
    """An onnxruntime session on the CPU, one thread (what validation and tests use)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])


def check_dynamic_batch(session: ort.InferenceSession, rows: np.ndarray) -> None:
    """Batch 1 and batch N must both run and give N rows of every output."""
    for n in (1, min(BATCH_CHECK, len(rows))):
        outputs = session.run(None, {INPUT_NAME: rows[:n]})
        for meta, value in zip(session.get_outputs(), outputs, strict=True):
            if value.shape[0] != n:
                raise ValidationFailed(
                    f'dynamic batch check failed: output "{meta.name}" has {value.shape[0]} rows '
                    f"for a batch of {n}"
                )


def predict_onnx(session: ort.InferenceSession, rows: np.ndarray, batch: int = 512) -> np.ndarray:
    """Probabilities for `rows` through onnxruntime, in batches."""
    parts = [
        session.run(["probabilities"], {INPUT_NAME: rows[i : i + batch]})[0]
        for i in range(0, len(rows), batch)
    ]
    return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)


def check_parity(
    module: nn.Module, session: ort.InferenceSession, rows: np.ndarray, atol: float
) -> tuple[float, float]:
    """Max |torch - onnxruntime| over probabilities, and the fraction of equal labels."""
    module.eval()
    with torch.no_grad():
        expected, _ = module(torch.from_numpy(rows))
    expected_np = expected.numpy()
    got = predict_onnx(session, rows)
    diff = float(np.max(np.abs(expected_np - got))) if len(rows) else 0.0
    agreement = float(np.mean(expected_np.argmax(-1) == got.argmax(-1))) if len(rows) else 1.0
    if not diff <= atol:
        raise ValidationFailed(
            f"parity check failed: max abs difference {diff:.3g} between PyTorch and "
            f"onnxruntime exceeds {atol:g} over {len(rows)} rows"
        )
    return diff, agreement


def validate_export(
    model_bytes: bytes,
    module: nn.Module,
    test_x: np.ndarray,
    test_y: np.ndarray,
    *,
    parity_atol: float = 1e-4,
    parity_samples: int = 256,
    min_test_accuracy: float | None = None,
) -> ValidationReport:
    """Run every check on an exported model; raise ValidationFailed at the first failure."""
    opset = check_graph(model_bytes)
    try:
        session = open_session(model_bytes)
    except Exception as err:  # onnxruntime raises its own exception types
        raise ValidationFailed(f"onnxruntime cannot load the model: {err}") from err
    x = np.ascontiguousarray(test_x, dtype=np.float32)
    check_dynamic_batch(session, x)
    diff, agreement = check_parity(module, session, x[:parity_samples], parity_atol)
    accuracy = float(np.mean(predict_onnx(session, x).argmax(-1) == test_y)) if len(x) else 0.0
    if min_test_accuracy is not None and accuracy < min_test_accuracy:
        raise ValidationFailed(
            f"accuracy check failed: test accuracy {accuracy:.4f} through onnxruntime is below "
            f"the required {min_test_accuracy:.4f}"
        )
    return ValidationReport(opset, diff, agreement, accuracy, len(x))
