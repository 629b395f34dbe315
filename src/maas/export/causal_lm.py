"""Causal language model -> ONNX with a key/value cache ("decoder with past", as optimum names it).

The graph's interface is the one generative versions share (inputs `input_ids`, `attention_mask`,
`position_ids`, `past_key_values.{i}.key/value`; outputs `logits`, `present.{i}.key/value`), with
batch, sequence and past lengths symbolic.

The TorchScript exporter (`dynamo=False`) is used on purpose: `torch.export` cannot state that the
attention mask is `past + seq` long (a sum of two dynamic dimensions) and specialises a past of
length 0, while tracing keeps every length symbolic from one sample, and the graph is then proved
equal to PyTorch at other lengths by `maas.export.causal_lm_checks`.
"""

from __future__ import annotations

import io
import logging
import warnings

import onnx
import torch

from maas.errors import ValidationFailed
from maas.export.onnx import ExportInfo
from maas.train.gpt import GPT, CausalLMGraph

log = logging.getLogger(__name__)

TRACE_BATCH, TRACE_SEQ, TRACE_PAST = 2, 3, 4  # distinct sizes, so no two dims get confused
EXPORTER = "torch.onnx.export(dynamo=False)"


def input_names(layers: int) -> list[str]:
    """The graph's input names, in order."""
    past = [f"past_key_values.{i}.{kind}" for i in range(layers) for kind in ("key", "value")]
    return ["input_ids", "attention_mask", "position_ids", *past]


def output_names(layers: int) -> list[str]:
    """The graph's output names, in order."""
    present = [f"present.{i}.{kind}" for i in range(layers) for kind in ("key", "value")]
    return ["logits", *present]


def _dynamic_axes(layers: int) -> dict[str, dict[int, str]]:
    total = "past_sequence_length + sequence_length"
    axes: dict[str, dict[int, str]] = {
        "input_ids": {0: "batch_size", 1: "sequence_length"},
        "attention_mask": {0: "batch_size", 1: total},
        "position_ids": {0: "batch_size", 1: "sequence_length"},
        "logits": {0: "batch_size", 1: "sequence_length"},
    }
    for i in range(layers):
        for kind in ("key", "value"):
            axes[f"past_key_values.{i}.{kind}"] = {0: "batch_size", 2: "past_sequence_length"}
            axes[f"present.{i}.{kind}"] = {0: "batch_size", 2: total}
    return axes


def _trace_inputs(model: GPT) -> tuple[torch.Tensor, ...]:
    options = model.options
    head_dim = options.dim // options.heads
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, model.vocab_size, (TRACE_BATCH, TRACE_SEQ), generator=generator)
    mask = torch.ones(TRACE_BATCH, TRACE_PAST + TRACE_SEQ, dtype=torch.int64)
    positions = torch.arange(TRACE_PAST, TRACE_PAST + TRACE_SEQ).expand(TRACE_BATCH, -1)
    shape = (TRACE_BATCH, options.heads, TRACE_PAST, head_dim)
    past = [torch.randn(shape, generator=generator) for _ in range(2 * options.layers)]
    return (ids, mask, positions.contiguous(), *past)


def export_causal_lm(model: GPT, opset: int = 18) -> tuple[bytes, ExportInfo]:
    """Export `model` with its key/value cache to ONNX bytes.

    Raises:
        ValidationFailed: the exporter failed.
    """
    model.eval()
    layers = model.options.layers
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer and deprecation warnings of the old exporter
        try:
            torch.onnx.export(
                CausalLMGraph(model),
                _trace_inputs(model),
                buffer,  # type: ignore[arg-type]  # the stubs omit file objects
                dynamo=False,
                input_names=input_names(layers),
                output_names=output_names(layers),
                dynamic_axes=_dynamic_axes(layers),
                opset_version=opset,
                do_constant_folding=True,
            )
        except Exception as err:  # the exporter raises many kinds; name it and stop here
            raise ValidationFailed(f"ONNX export failed: {type(err).__name__}: {err}") from err
    data = buffer.getvalue()
    proto = onnx.load_from_string(data)
    opset_found = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)
    info = ExportInfo(
        opset=int(opset_found),
        ir_version=int(proto.ir_version),
        exporter=EXPORTER,
        torch_version=torch.__version__,
        onnx_version=onnx.__version__,
    )
    log.info("export.done", extra={"bytes": len(data), "opset": info.opset, "kind": "causal_lm"})
    return data, info
