"""The REST front end through tritonclient's HTTP client: health, metadata, config and inference."""

from __future__ import annotations

from collections.abc import AsyncIterator

import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.http.aio as httpclient
from onnx_models import Classifier


@pytest.fixture
async def client(rest_url: str) -> AsyncIterator[httpclient.InferenceServerClient]:
    triton = httpclient.InferenceServerClient(rest_url.removeprefix("http://"))
    yield triton
    await triton.close()


def plain_onnxruntime(classifier: Classifier, x: np.ndarray) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(classifier.model_bytes, providers=["CPUExecutionProvider"])
    probabilities, label = session.run(["probabilities", "label"], {"input": x})
    return {"probabilities": probabilities, "label": label}


async def test_health_and_server_metadata(client: httpclient.InferenceServerClient) -> None:
    assert await client.is_server_live()
    assert await client.is_server_ready()
    assert await client.is_model_ready("iris")
    assert await client.is_model_ready("iris", "1")
    assert not await client.is_model_ready("nope")
    meta = await client.get_server_metadata()
    assert meta["name"] == "maas"
    assert "binary_tensor_data" in meta["extensions"]
    assert "classification" in meta["extensions"]


async def test_model_metadata_carries_signature_and_lineage(
    client: httpclient.InferenceServerClient, classifier: Classifier
) -> None:
    meta = await client.get_model_metadata("iris")
    assert meta["name"] == "iris"
    assert meta["versions"] == ["1"]
    assert meta["platform"] == "onnxruntime_onnx"
    assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 4]}]
    assert [o["name"] for o in meta["outputs"]] == ["probabilities", "label"]
    params = meta["parameters"]
    assert params["registry_version"] == 1
    assert len(params["digest"]) == 64
    assert params["lineage"]["run_id"] == "run-1"
    assert params["metrics"] == {"test_accuracy": 0.97}
    assert params["labels"] == list(classifier.labels)


async def test_model_config_is_triton_shaped(client: httpclient.InferenceServerClient) -> None:
    config = await client.get_model_config("iris")
    assert config["platform"] == "onnxruntime_onnx"
    assert config["backend"] == "onnxruntime"
    assert config["max_batch_size"] == 32
    assert config["input"] == [{"name": "input", "data_type": "TYPE_FP32", "dims": [4]}]
    assert config["output"][1] == {"name": "label", "data_type": "TYPE_INT64", "dims": []}
    assert config["dynamic_batching"]["max_queue_delay_microseconds"] == 500
    assert config["instance_group"] == [{"count": 1, "kind": "KIND_CPU"}]


@pytest.mark.parametrize("rows", [1, 3, 17])
@pytest.mark.parametrize("binary", [False, True])
async def test_infer_matches_plain_onnxruntime(
    client: httpclient.InferenceServerClient, classifier: Classifier, rows: int, binary: bool
) -> None:
    x = np.random.default_rng(rows).normal(size=(rows, 4)).astype(np.float32)
    tensor = httpclient.InferInput("input", [rows, 4], "FP32")
    tensor.set_data_from_numpy(x, binary_data=binary)
    outputs = [
        httpclient.InferRequestedOutput("probabilities", binary_data=binary),
        httpclient.InferRequestedOutput("label", binary_data=binary),
    ]
    result = await client.infer("iris", [tensor], outputs=outputs, request_id=f"r{rows}")
    want = plain_onnxruntime(classifier, x)
    np.testing.assert_allclose(result.as_numpy("probabilities"), want["probabilities"], atol=1e-5)
    np.testing.assert_array_equal(result.as_numpy("label"), want["label"])
    assert result.as_numpy("label").dtype == np.int64
    response = result.get_response()
    assert response["id"] == f"r{rows}"
    assert response["model_version"] == "1"


async def test_infer_by_version_and_default_outputs(
    client: httpclient.InferenceServerClient, classifier: Classifier
) -> None:
    x = np.eye(4, dtype=np.float32)
    tensor = httpclient.InferInput("input", [4, 4], "FP32")
    tensor.set_data_from_numpy(x, binary_data=True)
    result = await client.infer("iris", [tensor], model_version="1")
    np.testing.assert_allclose(result.as_numpy("probabilities"), classifier.expected(x), atol=1e-5)
    assert result.as_numpy("label").tolist() == classifier.expected(x).argmax(axis=1).tolist()


async def test_classification_returns_top_k_labelled_strings(
    client: httpclient.InferenceServerClient, classifier: Classifier
) -> None:
    x = np.random.default_rng(7).normal(size=(2, 4)).astype(np.float32)
    tensor = httpclient.InferInput("input", [2, 4], "FP32")
    tensor.set_data_from_numpy(x)
    output = httpclient.InferRequestedOutput("probabilities", binary_data=True, class_count=2)
    result = await client.infer("iris", [tensor], outputs=[output])
    strings = result.as_numpy("probabilities")
    assert strings.shape == (2, 2)
    expected = classifier.expected(x)
    for row, want in zip(strings, expected, strict=True):
        top = np.argsort(-want)[:2]
        parts = [item.decode().split(":") for item in row]
        assert [int(p[1]) for p in parts] == top.tolist()
        assert [p[2] for p in parts] == [classifier.labels[i] for i in top]
        np.testing.assert_allclose([float(p[0]) for p in parts], want[top], atol=1e-4)


async def test_statistics_count_the_inferences(client: httpclient.InferenceServerClient) -> None:
    x = np.ones((5, 4), dtype=np.float32)
    tensor = httpclient.InferInput("input", [5, 4], "FP32")
    tensor.set_data_from_numpy(x)
    await client.infer("iris", [tensor])
    await client.infer("iris", [tensor])
    stats = await client.get_inference_statistics("iris")
    (entry,) = stats["model_stats"]
    assert entry["name"] == "iris"
    assert entry["version"] == "1"
    assert entry["inference_count"] == 10
    assert entry["inference_stats"]["success"]["count"] == 2
    assert entry["inference_stats"]["fail"]["count"] == 0
    assert (
        sum(b["compute_infer"]["count"] for b in entry["batch_stats"]) == entry["execution_count"]
    )
    everything = await client.get_inference_statistics()
    assert [e["name"] for e in everything["model_stats"]] == ["iris"]
