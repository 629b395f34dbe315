"""PyTorch -> ONNX through the dynamo exporter, with a dynamic batch dimension and named tensors."""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import onnx
import torch
from torch import nn

from maas.errors import ValidationFailed

log = logging.getLogger(__name__)

INPUT_NAME = "input"
OUTPUT_NAMES = ("probabilities", "label")
MAX_BATCH = 1 << 20  # upper bound the exporter records for the symbolic batch dimension


@dataclass(frozen=True)
class ExportInfo:
    """Facts about an export, kept in the version's lineage."""

    opset: int
    ir_version: int
    exporter: str
    torch_version: str
    onnx_version: str

    def to_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def export_onnx(
    module: nn.Module, sample: torch.Tensor, opset: int = 18
) -> tuple[bytes, ExportInfo]:
    """Export `module` (inputs [N, ...] -> probabilities, label) to ONNX bytes.

    The batch dimension is symbolic ("batch"); every other dimension is fixed by `sample`.
    """
    module.eval()
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    exporter_log = logging.getLogger("torch.onnx")
    previous_level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)  # it warns about optional torchvision ops at every export
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's own deprecation chatter
        try:
            program = torch.onnx.export(
                module,
                (sample,),
                dynamo=True,
                input_names=[INPUT_NAME],
                output_names=list(OUTPUT_NAMES),
                dynamic_shapes={"x": {0: batch}},
                opset_version=opset,
                verbose=False,
            )
        except Exception as err:  # the exporter raises many kinds; name it and stop here
            raise ValidationFailed(f"ONNX export failed: {type(err).__name__}: {err}") from err
        finally:
            exporter_log.setLevel(previous_level)
    if program is None:
        raise ValidationFailed("ONNX export produced no program")
    model = program.model_proto
    data = model.SerializeToString()
    opset_found = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    info = ExportInfo(
        opset=int(opset_found),
        ir_version=int(model.ir_version),
        exporter="torch.onnx.export(dynamo=True)",
        torch_version=torch.__version__,
        onnx_version=onnx.__version__,
    )
    log.info("export.done", extra={"bytes": len(data), "opset": info.opset})
    return data, info
