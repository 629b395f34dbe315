"""Registering an export folder and a user's own ONNX file (checked in onnxruntime first)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from registry_models import SIGNATURE

from maas.errors import InvalidInput, ValidationFailed
from maas.registry import Registry
from maas.registry.onnx_files import check_onnx_file, sample_input
from maas.signature import TensorSpec


def write_export(folder: Path, model: bytes, **manifest_overrides: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.onnx").write_bytes(model)
    (folder / "weights.safetensors").write_bytes(b"weights-bytes")
    (folder / "spec.yaml").write_text("name: iris\n")
    manifest = {
        "name": "iris",
        "signature": SIGNATURE.to_dict(),
        "labels": ["setosa", "versicolor", "virginica"],
        "metrics": {"test_accuracy": 0.95, "validation_accuracy": 0.9},
        "lineage": {"dataset_fingerprint": "abc123", "parent": None},
        "files": ["weights.safetensors", "spec.yaml"],
        **manifest_overrides,
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def reshape_to_five_onnx() -> bytes:
    """Loads fine, fails when run: reshapes a [N, 4] input into 5 elements."""
    shape = numpy_helper.from_array(np.array([5], dtype=np.int64), "shape")
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["x", "shape"], ["y"])],
        "bad_reshape",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [5])],
        initializer=[shape],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def test_register_export_keeps_manifest_and_files(
    registry: Registry, tmp_path: Path, onnx_model: bytes
) -> None:
    export = write_export(tmp_path / "export", onnx_model)
    mv = registry.register_export(export, actor="trainer")
    assert (mv.name, mv.version) == ("iris", 1)
    assert mv.signature == SIGNATURE
    assert mv.labels == ("setosa", "versicolor", "virginica")
    assert mv.metrics == {"test_accuracy": 0.95, "validation_accuracy": 0.9}
    assert mv.lineage == {"dataset_fingerprint": "abc123", "parent": None}
    assert sorted(mv.files) == ["spec.yaml", "weights.safetensors"]
    assert registry.read_artifact(mv) == onnx_model
    assert registry.read_file(mv, "weights.safetensors") == b"weights-bytes"
    assert registry.read_file(mv, "spec.yaml") == b"name: iris\n"
    renamed = registry.register_export(export, name="iris-copy")
    assert renamed.ref == "iris-copy@1"
    assert renamed.digest == mv.digest


@pytest.mark.parametrize(
    ("overrides", "remove", "message"),
    [
        ({}, "manifest.json", "has no manifest.json"),
        ({}, "model.onnx", "has no model.onnx"),
        ({"files": ["missing.bin"]}, None, "lists 'missing.bin', which is not in the folder"),
        ({"files": ["../escape"]}, None, "invalid file name '../escape'"),
        ({"signature": {"inputs": []}}, None, "manifest.json is malformed"),
    ],
)
def test_register_export_refuses_broken_folders(
    registry: Registry,
    tmp_path: Path,
    onnx_model: bytes,
    overrides: dict[str, object],
    remove: str | None,
    message: str,
) -> None:
    export = write_export(tmp_path / "export", onnx_model, **overrides)
    if remove:
        (export / remove).unlink()
    with pytest.raises(InvalidInput, match=message.replace(".", r"\.")):
        registry.register_export(export)
    assert registry.list_models() == []


def test_register_onnx_file_reads_signature(
    registry: Registry, tmp_path: Path, onnx_model: bytes
) -> None:
    path = tmp_path / "mine.onnx"
    path.write_bytes(onnx_model)
    mv = registry.register_onnx_file(path, "mine", labels=["a", "b", "c"], actor="me")
    assert mv.signature == SIGNATURE
    assert mv.labels == ("a", "b", "c")
    assert mv.lineage == {"source": "onnx_file", "file": "mine.onnx"}
    assert registry.read_artifact(mv) == onnx_model


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"this is not onnx", "failed to load or run"),
        (reshape_to_five_onnx(), "failed to load or run"),
    ],
)
def test_register_onnx_file_refuses_models_that_fail(
    registry: Registry, tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "broken.onnx"
    path.write_bytes(content)
    with pytest.raises(ValidationFailed) as caught:
        registry.register_onnx_file(path, "broken")
    assert str(path) in str(caught.value)
    assert message in str(caught.value)
    assert registry.list_models() == []


def test_check_onnx_file_int64_input(tmp_path: Path) -> None:
    graph = helper.make_graph(
        [helper.make_node("Cast", ["ids"], ["y"], to=TensorProto.FLOAT)],
        "cast",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "cast.onnx"
    onnx.save(model, path)
    checked = check_onnx_file(path)
    assert [(t.name, t.datatype, t.shape) for t in checked.signature.inputs] == [
        ("ids", "INT64", (-1, 2))
    ]


@pytest.mark.parametrize(
    ("datatype", "dtype"),
    [("FP32", np.float32), ("FP16", np.float16), ("INT64", np.int64), ("BOOL", np.bool_)],
)
def test_sample_input_matches_spec(datatype: str, dtype: type) -> None:
    array = sample_input(TensorSpec("x", datatype, (-1, 3, 2)))
    assert array.shape == (1, 3, 2)
    assert array.dtype == dtype
