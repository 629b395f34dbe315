"""TF Serving, SageMaker and TorchServe requests, as their clients send them, answer correctly."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import numpy as np
import pytest
from rollout_harness import Served, classifier, lookup_body, register, register_lookup

from maas.registry.store import Registry

Serve = Callable[..., Any]
ROWS = [[0.5, -1.0, 2.0, 0.25], [1.0, 0.0, -0.5, 3.0]]
JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}


@pytest.fixture
async def served(fresh_registry: Registry, serve: Serve) -> Served:
    register(fresh_registry, "digits", seed=1)
    register(fresh_registry, "digits", seed=2)
    fresh_registry.set_alias("digits", "production", 1)
    register_lookup(fresh_registry, "lookup", table_size=10)
    result: Served = await serve()
    return result


@pytest.fixture
async def client(served: Served) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=served.url, headers=JSON_HEADERS) as http:
        yield http


def expected(seed: int) -> np.ndarray:
    return classifier(seed).expected(np.array(ROWS, dtype=np.float32))


def assert_rows(predictions: list[dict[str, Any]], seed: int) -> None:
    probabilities = np.array([p["probabilities"] for p in predictions])
    np.testing.assert_allclose(probabilities, expected(seed), rtol=1e-5)
    assert [p["label"] for p in predictions] == expected(seed).argmax(axis=1).tolist()


# -- TF Serving -----------------------------------------------------------------------------


async def test_tfserving_predict_in_row_format(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/models/digits:predict", json={"signature_name": "serving_default", "instances": ROWS}
    )
    assert response.status_code == 200
    assert_rows(response.json()["predictions"], seed=1)


async def test_tfserving_predict_in_columnar_format_by_version_and_label(
    client: httpx.AsyncClient,
) -> None:
    for path, seed in [("versions/2", 2), ("labels/production", 1)]:
        response = await client.post(f"/v1/models/digits/{path}:predict", json={"inputs": ROWS})
        assert response.status_code == 200
        outputs = response.json()["outputs"]
        np.testing.assert_allclose(outputs["probabilities"], expected(seed), rtol=1e-5)
        assert outputs["label"] == expected(seed).argmax(axis=1).tolist()


async def test_tfserving_single_output_model_answers_bare_values(
    client: httpx.AsyncClient,
) -> None:
    rows = await client.post("/v1/models/lookup:predict", json={"instances": [[1.0], [4.0]]})
    assert rows.json() == {"predictions": [[10.0], [40.0]]}
    columns = await client.post("/v1/models/lookup:predict", json={"inputs": [[2.0]]})
    assert columns.json() == {"outputs": [[20.0]]}


async def test_tfserving_status_and_metadata(client: httpx.AsyncClient) -> None:
    status = (await client.get("/v1/models/digits")).json()
    assert status == {
        "model_version_status": [
            {
                "version": v,
                "state": "AVAILABLE",
                "status": {"error_code": "OK", "error_message": ""},
            }
            for v in ("1", "2")
        ]
    }
    one = (await client.get("/v1/models/digits/versions/2")).json()
    assert [s["version"] for s in one["model_version_status"]] == ["2"]
    meta = (await client.get("/v1/models/digits/metadata")).json()
    signature = meta["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert signature["inputs"]["input"]["dtype"] == "DT_FLOAT"
    assert signature["inputs"]["input"]["tensor_shape"]["dim"][1]["size"] == "4"


@pytest.mark.parametrize(
    ("path", "body", "status", "fragment"),
    [
        ("/v1/models/nope:predict", {"instances": ROWS}, 404, "nope"),
        ("/v1/models/digits:predict", {"rows": ROWS}, 400, '"instances" or "inputs"'),
        ("/v1/models/digits:predict", {"instances": [[1.0, 2.0]]}, 400, "shape"),
        ("/v1/models/digits/versions/9:predict", {"instances": ROWS}, 404, "9"),
    ],
)
async def test_tfserving_errors(
    client: httpx.AsyncClient, path: str, body: dict[str, Any], status: int, fragment: str
) -> None:
    response = await client.post(path, json=body)
    assert response.status_code == status
    assert set(response.json()) == {"error"}
    assert fragment in response.json()["error"]


# -- SageMaker ------------------------------------------------------------------------------


async def test_sagemaker_ping_and_invocations_with_a_target_model(
    client: httpx.AsyncClient,
) -> None:
    ping = await client.get("/ping")
    assert ping.status_code == 200
    headers = {"X-Amzn-SageMaker-Target-Model": "digits.tar.gz"}
    response = await client.post("/invocations", json={"instances": ROWS}, headers=headers)
    assert response.status_code == 200
    assert_rows(response.json()["predictions"], seed=1)
    bare = await client.post("/invocations", json=ROWS, headers=headers)
    assert_rows(bare.json()["predictions"], seed=1)


async def test_sagemaker_without_a_target_needs_a_single_model(
    client: httpx.AsyncClient, fresh_registry: Registry, served: Served
) -> None:
    response = await client.post("/invocations", json={"instances": ROWS})
    assert response.status_code == 400
    assert "X-Amzn-SageMaker-Target-Model" in response.json()["error"]
    await served.manager.unload_model("digits")
    only = await client.post("/invocations", json={"instances": [[3.0]]})
    assert only.status_code == 200
    assert only.json() == {"predictions": [[30.0]]}


# -- TorchServe -----------------------------------------------------------------------------


async def test_torchserve_predictions_for_rows_and_one_row(client: httpx.AsyncClient) -> None:
    many = await client.post("/predictions/digits", json=ROWS)
    assert many.status_code == 200
    assert_rows(many.json(), seed=1)
    one = await client.post("/predictions/digits/2.0", json=ROWS[0])
    assert one.status_code == 200
    np.testing.assert_allclose(one.json()["probabilities"], expected(2)[0], rtol=1e-5)
    assert (await client.get("/ping")).json() == {"status": "Healthy"}


@pytest.mark.parametrize(
    ("path", "body", "status", "kind"),
    [
        ("/predictions/nope", ROWS, 404, "ModelNotFoundException"),
        ("/predictions/digits/7", ROWS, 404, "ModelNotFoundException"),
        ("/predictions/digits", {"rows": ROWS}, 400, "BadRequestException"),
    ],
)
async def test_torchserve_errors_have_its_shape(
    client: httpx.AsyncClient, path: str, body: Any, status: int, kind: str
) -> None:
    response = await client.post(path, json=body)
    assert response.status_code == status
    doc = response.json()
    assert doc["code"] == status
    assert doc["type"] == kind
    assert doc["message"]


async def test_a_failing_model_is_an_internal_error_on_every_api(
    client: httpx.AsyncClient,
) -> None:
    torchserve = await client.post("/predictions/lookup", json=[[70.0]])
    assert torchserve.status_code == 500
    assert torchserve.json()["type"] == "InternalServerException"
    v2 = await client.post("/v2/models/lookup/infer", json=lookup_body(70.0))
    assert v2.status_code == 500
