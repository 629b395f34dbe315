"""The benchmark's reference FastAPI server, through tritonclient's HTTP client: it must answer
what perf_analyzer asks (metadata, config, statistics, JSON and binary inference) correctly."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.http as httpclient
from onnx_models import Classifier, build_classifier

from benchmarks.server import ServerProcess, start_reference

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def classifier() -> Classifier:
    return build_classifier(features=4, classes=3)


@pytest.fixture(scope="module")
def reference(
    tmp_path_factory: pytest.TempPathFactory, classifier: Classifier
) -> Iterator[ServerProcess]:
    folder = tmp_path_factory.mktemp("reference")
    (folder / "onnx").mkdir()
    (folder / "onnx" / "iris.onnx").write_bytes(classifier.model_bytes)
    server = start_reference(folder / "onnx", ["iris"], cpu=None, log_path=folder / "app.log")
    yield server
    server.stop()


@pytest.fixture
def client(reference: ServerProcess) -> Iterator[httpclient.InferenceServerClient]:
    triton = httpclient.InferenceServerClient(f"127.0.0.1:{reference.http_port}")
    yield triton
    triton.close()


def infer(
    client: httpclient.InferenceServerClient, x: np.ndarray, *, binary: bool
) -> dict[str, np.ndarray]:
    tensor = httpclient.InferInput("input", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x, binary_data=binary)
    outputs = [
        httpclient.InferRequestedOutput(name, binary_data=binary)
        for name in ("probabilities", "label")
    ]
    result = client.infer("iris", [tensor], outputs=outputs)
    return {name: result.as_numpy(name) for name in ("probabilities", "label")}


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_inference_matches_onnxruntime(
    client: httpclient.InferenceServerClient, classifier: Classifier, binary: bool
) -> None:
    x = np.random.default_rng(1).standard_normal((5, 4)).astype(np.float32)
    session = ort.InferenceSession(classifier.model_bytes, providers=["CPUExecutionProvider"])
    probabilities, label = session.run(["probabilities", "label"], {"input": x})
    got = infer(client, x, binary=binary)
    np.testing.assert_allclose(got["probabilities"], probabilities, rtol=1e-6)
    np.testing.assert_array_equal(got["label"], label)
    assert got["label"].dtype == np.int64


def test_metadata_and_config_as_perf_analyzer_reads_them(
    client: httpclient.InferenceServerClient,
) -> None:
    assert client.is_server_ready()
    assert client.is_model_ready("iris", "1")
    meta = client.get_model_metadata("iris", "1")
    assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 4]}]
    assert [o["datatype"] for o in meta["outputs"]] == ["FP32", "INT64"]
    config = client.get_model_config("iris")
    assert config["max_batch_size"] > 0
    assert config["input"] == [{"name": "input", "data_type": "TYPE_FP32", "dims": [4]}]
    assert "binary_tensor_data" in client.get_server_metadata()["extensions"]


def test_statistics_count_each_answered_request(
    client: httpclient.InferenceServerClient, reference: ServerProcess
) -> None:
    before = reference.success_count("iris")
    x = np.zeros((1, 4), dtype=np.float32)
    for _ in range(3):
        infer(client, x, binary=True)
    assert reference.success_count("iris") == before + 3
    # perf_analyzer picks the model version whose queue count grew and needs equal compute
    # counts; it asks for every model's statistics at once.
    stats = client.get_inference_statistics()["model_stats"]
    assert [s["name"] for s in stats] == ["iris"]
    counts = {k: v["count"] for k, v in stats[0]["inference_stats"].items()}
    assert counts["queue"] == counts["success"] == before + 3
    assert counts["compute_input"] == counts["compute_infer"] == counts["compute_output"]


def test_errors_are_v2_shaped(reference: ServerProcess) -> None:
    unknown = httpx.get(f"{reference.http_url}/v2/models/nope", timeout=5)
    assert (unknown.status_code, unknown.json()) == (404, {"error": "unknown model nope"})
    url = f"{reference.http_url}/v2/models/iris/infer"
    bad = httpx.post(url, content=b'{"inputs": [{}]}', timeout=5)
    assert bad.status_code == 400
    assert bad.json()["error"].startswith("bad inference request")


def test_onnx_files_are_named_models(tmp_path: Path, classifier: Classifier) -> None:
    from benchmarks.reference_app import load_models

    (tmp_path / "a.onnx").write_bytes(classifier.model_bytes)
    (tmp_path / "b.onnx").write_bytes(classifier.model_bytes)
    (tmp_path / "notes.txt").write_text("not a model")
    assert sorted(load_models(tmp_path)) == ["a", "b"]
