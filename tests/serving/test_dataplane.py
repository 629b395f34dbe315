"""`DataPlane` over a real registry: default versions, aliases, validation, config and stats."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from onnx_models import build_classifier, build_fixed_batch_model
from prometheus_client import CollectorRegistry

from maas.errors import InvalidInput, ModelNotFound, ShapeMismatch
from maas.protocol.types import InferRequest, InferTensor, RequestedOutput
from maas.registry.store import Registry
from maas.serving.context import RequestContext
from maas.serving.dataplane import DataPlane, classify
from maas.serving.server import build_data_plane
from maas.serving.validation import check_inputs
from maas.signature import Signature, TensorSpec


@pytest.fixture
def two_version_registry(tmp_path: Path) -> Iterator[Registry]:
    """Model "iris" v1 and v2 (production alias on v1) and a fixed-batch model "double"."""
    reg = Registry(f"sqlite:///{tmp_path / 'r.db'}", tmp_path / "artifacts")
    for seed in (1, 2):
        c = build_classifier(4, 3, seed=seed)
        reg.register("iris", c.model_bytes, signature=c.signature, labels=("a", "b", "c"))
    reg.set_alias("iris", "production", 1)
    fixed = Signature(
        inputs=(TensorSpec("x", "FP32", (1, 2)),), outputs=(TensorSpec("y", "FP32", (1, 2)),)
    )
    reg.register("double", build_fixed_batch_model(2), signature=fixed)
    yield reg
    reg.close()


@pytest.fixture
def plane(two_version_registry: Registry) -> Iterator[DataPlane]:
    dp = build_data_plane(
        two_version_registry, ["iris", "iris@2", "double"], None, CollectorRegistry()
    )
    yield dp
    dp.close()


def request(x: np.ndarray, version: str | None = None, **kwargs: object) -> InferRequest:
    tensor = InferTensor("input", "FP32", x.shape, x)
    return InferRequest("iris", version, (tensor,), **kwargs)  # type: ignore[arg-type]


async def test_default_is_the_production_alias_and_versions_are_reachable(
    plane: DataPlane,
) -> None:
    x = np.ones((2, 4), dtype=np.float32)
    default = await plane.infer(request(x), RequestContext.starting_now("t", "rest", 30.0))
    v2 = await plane.infer(request(x, "2"), RequestContext.starting_now("t", "rest", 30.0))
    assert default.model_version == "1"
    assert v2.model_version == "2"
    v1_probs = build_classifier(4, 3, seed=1).expected(x)
    v2_probs = build_classifier(4, 3, seed=2).expected(x)
    np.testing.assert_allclose(default.outputs[0].data, v1_probs, atol=1e-5)
    np.testing.assert_allclose(v2.outputs[0].data, v2_probs, atol=1e-5)
    meta = plane.model_metadata("iris", None)
    assert meta.versions == ("1", "2")
    assert meta.parameters["aliases"] == ["production"]
    assert plane.model_metadata("iris", "2").versions == ("2",)
    assert await plane.model_ready("iris", "2")
    assert not await plane.model_ready("iris", "3")
    with pytest.raises(ModelNotFound, match="no loaded version '3'"):
        plane.model_metadata("iris", "3")


async def test_validation_names_the_input_and_the_expectation(plane: DataPlane) -> None:
    with pytest.raises(ShapeMismatch, match=r'"input" has shape \[3, 5\]; model iris:1 expects'):
        await plane.infer(
            request(np.ones((3, 5), dtype=np.float32)),
            RequestContext.starting_now("t", "grpc", 30.0),
        )
    bad_count = InferTensor("input", "FP32", (2, 4), np.ones(7, dtype=np.float32))
    with pytest.raises(ShapeMismatch, match="has 7 elements"):
        await plane.infer(
            InferRequest("iris", None, (bad_count,)), RequestContext.starting_now("t", "grpc", 30.0)
        )
    good = InferTensor("input", "FP32", (2, 4), np.ones(8, dtype=np.float32))
    twice = InferRequest("iris", None, (good, good))
    with pytest.raises(InvalidInput, match="given twice"):
        await plane.infer(twice, RequestContext.starting_now("t", "grpc", 30.0))
    extra = InferTensor("other", "FP32", (1,), np.ones(1, dtype=np.float32))
    with pytest.raises(InvalidInput, match='unknown input "other"; model iris:1 takes "input"'):
        await plane.infer(
            InferRequest("iris", None, (extra,)), RequestContext.starting_now("t", "grpc", 30.0)
        )
    stats = plane.model_statistics("iris", "1")["model_stats"][0]
    assert stats["inference_stats"]["fail"]["count"] == 4
    assert stats["execution_count"] == 0  # nothing reached the model


async def test_flat_data_is_reshaped_and_outputs_follow_the_request(plane: DataPlane) -> None:
    flat = InferTensor("input", "FP32", (2, 4), np.arange(8, dtype=np.float32))
    outputs = (RequestedOutput("label"), RequestedOutput("probabilities", classification=1))
    response = await plane.infer(
        InferRequest("iris", None, (flat,), outputs=outputs, id="q"),
        RequestContext.starting_now("t", "rest", 30.0),
    )
    assert response.id == "q"
    assert [o.name for o in response.outputs] == ["label", "probabilities"]
    label, top = response.outputs
    assert label.datatype == "INT64"
    assert top.datatype == "BYTES"
    assert top.shape == (2, 1)
    names = [item.decode().split(":")[2] for item in top.data.ravel()]
    assert names == [("a", "b", "c")[i] for i in label.data.tolist()]


async def test_fixed_batch_model_runs_alone_and_reports_max_batch_zero(plane: DataPlane) -> None:
    x = np.array([[1.5, -2.0]], dtype=np.float32)
    response = await plane.infer(
        InferRequest("double", None, (InferTensor("x", "FP32", (1, 2), x),)),
        RequestContext.starting_now("t", "rest", 30.0),
    )
    assert response.outputs[0].data.tolist() == [[3.0, -4.0]]
    config = plane.model_config("double", None)
    assert config["max_batch_size"] == 0
    assert config["input"] == [{"name": "x", "data_type": "TYPE_FP32", "dims": [1, 2]}]


def test_config_and_statistics_documents(plane: DataPlane) -> None:
    config = plane.model_config("iris", "2")
    assert config["name"] == "iris"
    assert config["version"] == "2"
    assert config["max_batch_size"] == 32
    assert config["output"][0] == {"name": "probabilities", "data_type": "TYPE_FP32", "dims": [3]}
    everything = plane.model_statistics(None, None)["model_stats"]
    assert sorted((s["name"], s["version"]) for s in everything) == [
        ("double", "1"),
        ("iris", "1"),
        ("iris", "2"),
    ]
    assert [s["version"] for s in plane.model_statistics("iris", None)["model_stats"]] == ["1", "2"]
    with pytest.raises(ModelNotFound):
        plane.model_statistics("nope", None)


async def test_timeout_parameter_must_be_positive(plane: DataPlane) -> None:
    x = np.ones((1, 4), dtype=np.float32)
    with pytest.raises(InvalidInput, match="timeout"):
        await plane.infer(
            request(x, parameters={"timeout": -5}), RequestContext.starting_now("t", "rest", 30.0)
        )
    ok = await plane.infer(
        request(x, parameters={"timeout": 5_000_000}),
        RequestContext.starting_now("t", "rest", 30.0),
    )
    assert ok.outputs[0].shape == (1, 3)


async def test_closed_plane_is_not_ready(two_version_registry: Registry) -> None:
    plane = build_data_plane(two_version_registry, ["iris"])
    assert await plane.ready()
    plane.close()
    assert not await plane.ready()
    assert not await plane.model_ready("iris", None)


def test_every_registered_model_is_served_by_default(two_version_registry: Registry) -> None:
    plane = build_data_plane(two_version_registry)
    try:
        assert plane.repository.model_names() == ["double", "iris"]
        assert plane.repository.version_names("iris") == ("1",)  # the production alias
    finally:
        plane.close()


def test_classify_without_labels_gives_score_and_index() -> None:
    scores = np.array([[0.1, 0.7, 0.2]], dtype=np.float32)
    assert classify(scores, 2, ()).tolist() == [[b"0.7:1", b"0.2:2"]]
    assert classify(scores, 9, ("x", "y", "z")).shape == (1, 3)


def test_missing_inputs_and_disagreeing_batches_are_named() -> None:
    signature = Signature(
        inputs=(TensorSpec("a", "FP32", (-1, 2)), TensorSpec("b", "INT64", (-1,))),
        outputs=(TensorSpec("y", "FP32", (-1,)),),
    )
    a = InferTensor("a", "FP32", (2, 2), np.ones((2, 2), dtype=np.float32))
    b = InferTensor("b", "INT64", (3,), np.ones(3, dtype=np.int64))
    options = {"label": "m:1", "max_batch_size": 8, "is_batchable": True}
    with pytest.raises(InvalidInput, match='missing input "b" for model m:1'):
        check_inputs(InferRequest("m", None, (a,)), signature, **options)  # type: ignore[arg-type]
    with pytest.raises(ShapeMismatch, match='disagree on the batch size \\("a": 2, "b": 3\\)'):
        check_inputs(InferRequest("m", None, (a, b)), signature, **options)  # type: ignore[arg-type]
