"""int8 quantization with onnxruntime: dynamic, static QDQ, and static with some layers kept fp32.

Every variant starts from the graph prepared by onnxruntime's `quant_pre_process` (shape inference
and graph optimization). Static quantization calibrates activation ranges on rows of the version's
own training split. When full int8 loses accuracy, onnxruntime's QDQ debugging
(`qdq_loss_debug`) compares each layer's weights and activations with the float model, and the
layers with the lowest signal-to-quantization-noise ratio are kept in fp32 ("partial" int8).
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import onnx
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_dynamic,
    quantize_static,
)
from onnxruntime.quantization import qdq_loss_debug as qdq_debug
from onnxruntime.quantization.shape_inference import quant_pre_process

from maas.errors import InvalidInput

log = logging.getLogger(__name__)

CalibrationName = Literal["minmax", "entropy", "percentile"]
CALIBRATION_METHODS: dict[str, CalibrationMethod] = {
    "minmax": CalibrationMethod.MinMax,
    "entropy": CalibrationMethod.Entropy,
    "percentile": CalibrationMethod.Percentile,
}
QUANTIZABLE_OPS = ("Conv", "Gemm", "MatMul")  # the layers that hold weights
CALIBRATION_BATCH = 32
DEBUG_ROWS = 64  # rows for layer-by-layer comparison; enough to rank layers, cheap to collect
INPUT_NAME = "input"


@dataclass(frozen=True)
class StaticOptions:
    """How static int8 is calibrated.

    Attributes:
        method: minmax, entropy or percentile.
        samples: training rows used for calibration.
        per_channel: one scale per output channel of each weight (more accurate).
        seed: which rows are drawn.
    """

    method: CalibrationName = "minmax"
    samples: int = 256
    per_channel: bool = True
    seed: int = 0


@dataclass(frozen=True)
class LayerError:
    """How much one layer suffers from int8, as signal-to-quantization-noise ratios in dB.

    Attributes:
        node: the layer's node name.
        op_type: Conv, Gemm or MatMul.
        weight_sqnr_db: float weights vs their int8 round trip.
        activation_sqnr_db: the worst quantization noise (before vs after QuantizeLinear and
            DequantizeLinear, in the int8 model) of the activations the layer reads or writes.
    """

    node: str
    op_type: str
    weight_sqnr_db: float
    activation_sqnr_db: float

    @property
    def score_db(self) -> float:
        """The worse (lower) of the two ratios; layers are ranked by it, lowest first."""
        return min(self.weight_sqnr_db, self.activation_sqnr_db)


class _RowReader(CalibrationDataReader):  # type: ignore[misc]  # onnxruntime is untyped
    """Feeds rows to onnxruntime's calibrators in batches."""

    def __init__(self, rows: np.ndarray, batch: int = CALIBRATION_BATCH) -> None:
        data = np.ascontiguousarray(rows, dtype=np.float32)
        self._batches: Iterator[dict[str, np.ndarray]] = iter(
            [{INPUT_NAME: data[i : i + batch]} for i in range(0, len(data), batch)]
        )

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)


def calibration_rows(train_x: np.ndarray, samples: int, seed: int = 0) -> np.ndarray:
    """`samples` rows drawn without replacement from the training split (all if fewer)."""
    if samples < 1:
        raise InvalidInput(f"--calibration-samples must be at least 1, got {samples}")
    rng = np.random.default_rng(seed)
    count = min(samples, len(train_x))
    index = np.sort(rng.choice(len(train_x), size=count, replace=False))
    return np.ascontiguousarray(train_x[index], dtype=np.float32)


def strip_debug_metadata(model_bytes: bytes) -> bytes:
    """Drop the exporter's per-node debug metadata (stack traces, FX names); the graph is unchanged.

    The exporter records a stack trace for every node; in a small int8 model that text is a
    sizeable share of the file.
    """
    model = onnx.load_from_string(model_bytes)
    for node in model.graph.node:
        del node.metadata_props[:]
        node.doc_string = ""
    return bytes(model.SerializeToString())


def prepare_graph(model_bytes: bytes) -> bytes:
    """onnxruntime's quantization pre-processing (shape inference and graph optimization)."""
    with tempfile.TemporaryDirectory(prefix="maas-quant-") as tmp:
        source, target = Path(tmp, "float.onnx"), Path(tmp, "prepared.onnx")
        source.write_bytes(model_bytes)
        quant_pre_process(str(source), str(target))
        return strip_debug_metadata(target.read_bytes())


def quantize_dynamic_int8(prepared: bytes) -> bytes:
    """int8 weights, activations quantized on the fly at run time (no calibration)."""
    with tempfile.TemporaryDirectory(prefix="maas-quant-") as tmp:
        source, target = Path(tmp, "prepared.onnx"), Path(tmp, "dynamic.onnx")
        source.write_bytes(prepared)
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8)
        return strip_debug_metadata(target.read_bytes())


def quantize_static_int8(
    prepared: bytes,
    calibration_x: np.ndarray,
    options: StaticOptions,
    exclude: Sequence[str] = (),
    *,
    compact: bool = False,
) -> bytes:
    """Static int8 in QDQ format, calibrated on `calibration_x`.

    Args:
        prepared: the graph from `prepare_graph`.
        calibration_x: raw input rows (the model scales them itself).
        options: calibration method and per-channel weights.
        exclude: node names kept in fp32.
        compact: keep biases in fp32 instead of int32 with per-channel scales and zero points:
            a smaller file, though onnxruntime then fuses fewer integer kernels.

    Returns:
        The quantized model's bytes.
    """
    method = CALIBRATION_METHODS.get(options.method)
    if method is None:
        raise InvalidInput(
            f"unknown calibration method {options.method!r}; use minmax, entropy or percentile"
        )
    with (
        tempfile.TemporaryDirectory(prefix="maas-quant-") as tmp,
        contextlib.redirect_stdout(io.StringIO()),  # histogram calibrators print progress
    ):
        source, target = Path(tmp, "prepared.onnx"), Path(tmp, "static.onnx")
        source.write_bytes(prepared)
        quantize_static(
            str(source),
            str(target),
            _RowReader(calibration_x),
            quant_format=QuantFormat.QDQ,
            per_channel=options.per_channel,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=method,
            nodes_to_exclude=list(exclude),
            extra_options={"WeightSymmetric": True, "QuantizeBias": not compact},
        )
        return strip_debug_metadata(target.read_bytes())


def quantizable_nodes(model_bytes: bytes) -> list[str]:
    """Names of the weight-holding nodes (Conv, Gemm, MatMul), in graph order."""
    model = onnx.load_from_string(model_bytes)
    return [n.name for n in model.graph.node if n.op_type in QUANTIZABLE_OPS]


def int8_fraction(model_bytes: bytes) -> float:
    """Share of weight-holding layers whose weights are int8 in `model_bytes` (0 for fp32)."""
    model = onnx.load_from_string(model_bytes)
    int8_inits = {
        t.name for t in model.graph.initializer if t.data_type in (onnx.TensorProto.INT8,)
    }
    dequantized = {
        n.output[0]
        for n in model.graph.node
        if n.op_type == "DequantizeLinear" and n.input[0] in int8_inits
    }
    layers = [n for n in model.graph.node if n.op_type in QUANTIZABLE_OPS]
    integer_ops = [
        n for n in model.graph.node if n.op_type in ("MatMulInteger", "ConvInteger", "QLinearConv")
    ]
    quantized = sum(1 for n in layers if len(n.input) > 1 and n.input[1] in dequantized)
    total = len(layers) + len(integer_ops)
    return (quantized + len(integer_ops)) / total if total else 0.0


PASS_THROUGH_OPS = ("Relu", "Clip", "LeakyRelu", "MaxPool", "Flatten", "Reshape")


def layer_activations(model: onnx.ModelProto, node: onnx.NodeProto) -> list[str]:
    """The activations a layer reads and writes, as they are quantized.

    QDQ quantizes a layer's output after a following activation or pooling (Conv+Relu is one
    fused kernel), so the output is followed through such single-consumer nodes.
    """
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for candidate in model.graph.node:
        for name in candidate.input:
            consumers.setdefault(name, []).append(candidate)
    tensors = [node.input[0], node.output[0]]
    current = node.output[0]
    while (
        len(consumers.get(current, [])) == 1 and consumers[current][0].op_type in PASS_THROUGH_OPS
    ):
        current = consumers[current][0].output[0]
        tensors.append(current)
    return tensors


def rank_sensitive_layers(prepared: bytes, qdq: bytes, rows: np.ndarray) -> list[LayerError]:
    """Rank weight layers by how much int8 hurts them, worst first (QDQ loss debugging).

    Args:
        prepared: the float graph the QDQ model was made from.
        qdq: the static int8 (QDQ) model.
        rows: raw input rows to run both models on.
    """
    sample = np.ascontiguousarray(rows[:DEBUG_ROWS], dtype=np.float32)
    with tempfile.TemporaryDirectory(prefix="maas-qdq-debug-") as tmp:
        float_path, qdq_path = Path(tmp, "float.onnx"), Path(tmp, "qdq.onnx")
        float_path.write_bytes(prepared)
        qdq_path.write_bytes(qdq)
        activations = {}
        for label, path in (("float", float_path), ("qdq", qdq_path)):
            augmented = Path(tmp, f"{label}-augmented.onnx")
            qdq_debug.modify_model_output_intermediate_tensors(str(path), str(augmented))
            activations[label] = qdq_debug.collect_activations(str(augmented), _RowReader(sample))
        matched = qdq_debug.create_activation_matching(activations["qdq"], activations["float"])
        activation_errors = qdq_debug.compute_activation_error(matched)
        weight_errors = qdq_debug.compute_weight_error(
            qdq_debug.create_weight_matching(str(float_path), str(qdq_path))
        )
    model = onnx.load_from_string(prepared)
    ranked = []
    for node in model.graph.node:
        if node.op_type not in QUANTIZABLE_OPS:
            continue
        weight_name = node.input[1] if len(node.input) > 1 else ""
        noise = [
            activation_errors[t]["qdq_err"]
            for t in layer_activations(model, node)
            if t in activation_errors
        ]
        ranked.append(
            LayerError(
                node=node.name,
                op_type=node.op_type,
                weight_sqnr_db=float(weight_errors.get(weight_name, np.inf)),
                activation_sqnr_db=float(min(noise, default=np.inf)),
            )
        )
    ranked.sort(key=lambda e: e.score_db)
    log.info("quantize.ranked", extra={"layers": [(e.node, round(e.score_db, 1)) for e in ranked]})
    return ranked
