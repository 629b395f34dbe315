"""`POST /v2/models/{m}/explain` against a real server: exact occlusion values, one batch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from onnx_models import Classifier, build_fixed_batch_model
from prometheus_client import CollectorRegistry

from maas.registry.store import Registry
from maas.security.acl import ENDPOINT_ACTIONS, Action
from maas.serving.rest.routes import ROUTES
from maas.serving.rest.server import RestServer
from maas.serving.server import build_data_plane
from maas.signature import Signature, TensorSpec

LABELS = {"model": "iris", "version": "1"}


def body_of(x: np.ndarray, **parameters: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "inputs": [
            {
                "name": "input",
                "datatype": "FP32",
                "shape": list(x.shape),
                "data": x.ravel().tolist(),
            }
        ]
    }
    if parameters:
        doc["parameters"] = parameters
    return doc


def outputs_of(reply: httpx.Response) -> dict[str, np.ndarray]:
    assert reply.status_code == 200, reply.text
    return {
        out["name"]: np.asarray(out["data"]).reshape(out["shape"])
        for out in reply.json()["outputs"]
    }


def expected_attributions(classifier: Classifier, x: np.ndarray, window: int = 1) -> np.ndarray:
    """Occlusion by hand: zero each block (no training mean recorded) and compare probabilities."""
    out = np.zeros(x.shape, dtype=np.float64)
    for i, row in enumerate(x):
        full = classifier.expected(row[None])[0]
        cls = int(full.argmax())
        for start in range(0, row.size, window):
            masked = row.copy()
            masked[start : start + window] = 0.0
            out[i, start : start + window] = full[cls] - classifier.expected(masked[None])[0][cls]
    return out


async def test_explain_answers_prediction_attributions_and_target_in_one_batch(
    rest_url: str, classifier: Classifier, metrics_registry: CollectorRegistry
) -> None:
    x = np.array([[1.0, -0.5, 2.0, 0.3], [-1.2, 0.8, 0.1, 1.5]], dtype=np.float32)
    async with httpx.AsyncClient(base_url=rest_url, timeout=30) as http:
        reply = await http.post("/v2/models/iris/explain", json=body_of(x))
    got = outputs_of(reply)
    assert set(got) == {"probabilities", "label", "attributions", "target"}
    np.testing.assert_allclose(got["probabilities"], classifier.expected(x), atol=1e-5)
    assert got["attributions"].shape == x.shape
    np.testing.assert_allclose(got["attributions"], expected_attributions(classifier, x), atol=1e-5)
    np.testing.assert_array_equal(got["target"], classifier.expected(x).argmax(axis=1))
    kinds = {o["name"]: o["datatype"] for o in reply.json()["outputs"]}
    assert kinds["attributions"] == "FP32"
    assert kinds["target"] == "INT64"
    assert reply.headers["x-model-version"] == "1"
    # Both rows and their 4 occluded copies each ran as one call of the model.
    assert metrics_registry.get_sample_value("maas_batch_size_count", LABELS) == 1
    assert metrics_registry.get_sample_value("maas_batch_size_sum", LABELS) == 10


async def test_explain_takes_a_window_a_target_and_a_version(
    rest_url: str, classifier: Classifier
) -> None:
    x = np.array([[0.5, 1.5, -2.0, 0.7]], dtype=np.float32)
    async with httpx.AsyncClient(base_url=rest_url, timeout=30) as http:
        windowed = outputs_of(
            await http.post("/v2/models/iris/versions/1/explain", json=body_of(x, window=2))
        )
        other = int(classifier.expected(x)[0].argmin())
        targeted = outputs_of(
            await http.post("/v2/models/iris/explain", json=body_of(x, target=other))
        )
    np.testing.assert_allclose(
        windowed["attributions"], expected_attributions(classifier, x, window=2), atol=1e-5
    )
    assert windowed["attributions"][0, 0] == windowed["attributions"][0, 1]
    assert targeted["target"].tolist() == [other]
    full = classifier.expected(x)[0][other]
    masked = x.copy()
    masked[0, 2] = 0.0
    assert targeted["attributions"][0, 2] == pytest.approx(
        full - classifier.expected(masked)[0][other], abs=1e-5
    )


async def test_sanity_occluding_top_features_moves_the_probability_more_than_random_ones(
    rest_url: str, classifier: Classifier
) -> None:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(16, 4)).astype(np.float32) * 2
    async with httpx.AsyncClient(base_url=rest_url, timeout=30) as http:
        got = outputs_of(await http.post("/v2/models/iris/explain", json=body_of(x)))
    top_moves, random_moves = [], []
    for row, attributions, cls in zip(x, got["attributions"], got["target"], strict=True):
        full = classifier.expected(row[None])[0][cls]
        for features, moves in (
            (np.argsort(-np.abs(attributions))[:1], top_moves),
            (rng.choice(4, size=1, replace=False), random_moves),
        ):
            masked = row.copy()
            masked[features] = 0.0
            moves.append(abs(full - classifier.expected(masked[None])[0][cls]))
    assert np.mean(top_moves) > np.mean(random_moves)


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"target": 7}, "scores classes 0..2"),
        ({"window": 0}, '"window" must be a positive integer'),
        ({"output": "label"}, "must name an FP32 output"),
    ],
)
async def test_bad_parameters_are_refused_with_400(
    rest_url: str, parameters: dict[str, Any], message: str
) -> None:
    x = np.ones((1, 4), dtype=np.float32)
    async with httpx.AsyncClient(base_url=rest_url, timeout=30) as http:
        reply = await http.post("/v2/models/iris/explain", json=body_of(x, **parameters))
        missing = await http.post("/v2/models/nope/explain", json=body_of(x))
        wrong = await http.post("/v2/models/iris/explain", json=body_of(np.ones((1, 3))))
    assert reply.status_code == 400
    assert message in reply.json()["error"]
    assert missing.status_code == 404
    assert wrong.status_code == 400
    assert "expects [-1, 4]" in wrong.json()["error"]


def test_explain_needs_the_infer_scope() -> None:
    for path in ("/v2/models/{m}/explain", "/v2/models/{m}/versions/{v}/explain"):
        (route,) = [r for r in ROUTES if (r.method, r.shape) == ("POST", path)]
        assert ENDPOINT_ACTIONS[route.kind] is Action.INFER


async def test_a_model_without_a_batch_dimension_cannot_be_explained(tmp_path: Path) -> None:
    registry = Registry(f"sqlite:///{tmp_path / 'registry.db'}", tmp_path / "artifacts")
    signature = Signature(
        inputs=(TensorSpec("x", "FP32", (1, 2)),), outputs=(TensorSpec("y", "FP32", (1, 2)),)
    )
    registry.register("double", build_fixed_batch_model(2), signature=signature)
    data_plane = build_data_plane(registry)
    server = RestServer(data_plane, host="127.0.0.1", port=0)
    await server.start()
    try:
        body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 2], "data": [1, 2]}]}
        async with httpx.AsyncClient(timeout=30) as http:
            url = f"http://127.0.0.1:{server.port}/v2/models/double"
            inferred = await http.post(f"{url}/infer", json=body)
            explained = await http.post(f"{url}/explain", json=body)
    finally:
        await server.stop()
        data_plane.close()
        registry.close()
    assert inferred.status_code == 200
    assert explained.status_code == 400
    assert "needs one FP32 input with a batch dimension" in explained.json()["error"]
