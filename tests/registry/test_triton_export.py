"""`export_repository` and `maas export-repo`: a Triton model repository Triton's own config
parser accepts, with every version's exact bytes."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf import text_format
from registry_models import SIGNATURE, linear_softmax_onnx
from tritonclient.grpc import model_config_pb2

from maas.errors import Conflict
from maas.registry import Registry
from maas.registry.triton import export_repository
from maas.signature import Signature, TensorSpec


def _config(path: Path) -> model_config_pb2.ModelConfig:
    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


def test_every_version_is_written_with_a_config_triton_parses(
    registry: Registry, tmp_path: Path
) -> None:
    models = [linear_softmax_onnx(seed) for seed in (1, 2)]
    for data in models:
        registry.register("digits", data, signature=SIGNATURE, labels=["a", "b", "c"])
    out = tmp_path / "repo"
    written = export_repository(registry, out, max_batch_size=16)
    assert [(m.name, m.versions) for m in written] == [("digits", (1, 2))]
    for number, data in zip((1, 2), models, strict=True):
        assert (out / "digits" / str(number) / "model.onnx").read_bytes() == data
    config = _config(out / "digits" / "config.pbtxt")
    assert config.name == "digits"
    assert config.platform == "onnxruntime_onnx"
    assert config.max_batch_size == 16
    assert list(config.version_policy.specific.versions) == [1, 2]
    assert [(i.name, i.data_type, list(i.dims)) for i in config.input] == [
        ("x", model_config_pb2.TYPE_FP32, [4])
    ]
    assert config.output[0].label_filename == "labels.txt"
    assert config.HasField("dynamic_batching")
    assert (out / "digits" / "labels.txt").read_text().split() == ["a", "b", "c"]


def test_one_version_of_a_fixed_batch_model(registry: Registry, tmp_path: Path) -> None:
    fixed = Signature(
        inputs=(TensorSpec("x", "FP32", (1, 4)),), outputs=(TensorSpec("y", "INT64", (1,)),)
    )
    registry.register("fixed", linear_softmax_onnx(0), signature=fixed)
    registry.register("fixed", linear_softmax_onnx(1), signature=fixed)
    export_repository(registry, tmp_path, ["fixed@1"])
    assert not (tmp_path / "fixed" / "2").exists()
    config = _config(tmp_path / "fixed" / "config.pbtxt")
    assert config.max_batch_size == 0
    assert list(config.input[0].dims) == [1, 4]
    assert not config.HasField("dynamic_batching")


def test_a_batch_only_output_is_reshaped(registry: Registry, tmp_path: Path) -> None:
    labels_only = Signature(
        inputs=(TensorSpec("x", "FP32", (-1, 4)),), outputs=(TensorSpec("y", "INT64", (-1,)),)
    )
    registry.register("argmax", linear_softmax_onnx(0), signature=labels_only)
    export_repository(registry, tmp_path)
    output = _config(tmp_path / "argmax" / "config.pbtxt").output[0]
    assert list(output.dims) == [1]
    assert list(output.reshape.shape) == []


def test_an_existing_model_folder_is_refused(registry: Registry, tmp_path: Path) -> None:
    registry.register("digits", linear_softmax_onnx(0), signature=SIGNATURE)
    (tmp_path / "digits").mkdir()
    with pytest.raises(Conflict):
        export_repository(registry, tmp_path)
