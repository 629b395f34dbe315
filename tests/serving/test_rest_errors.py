"""Every class of malformed request gets its 4xx and a message, and the server keeps answering."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import numpy as np
import pytest

INFER = "/v2/models/iris/infer"


@pytest.fixture
async def http(rest_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=rest_url) as client:
        yield client


def tensor(name: str = "input", datatype: str = "FP32", shape: Any = (2, 4), data: Any = None):
    values = data if data is not None else [0.5] * (int(np.prod(shape)) if shape else 1)
    return {"name": name, "datatype": datatype, "shape": list(shape), "data": values}


def binary_body(declared: int, actual: bytes) -> tuple[bytes, dict[str, str]]:
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "input",
                    "datatype": "FP32",
                    "shape": [2, 4],
                    "parameters": {"binary_data_size": declared},
                }
            ]
        }
    ).encode()
    return header + actual, {"Inference-Header-Content-Length": str(len(header))}


async def assert_still_serving(http: httpx.AsyncClient) -> None:
    reply = await http.post(INFER, json={"inputs": [tensor()]})
    assert reply.status_code == 200
    assert reply.json()["outputs"][0]["shape"] == [2, 3]


BAD_JSON_REQUESTS = [
    pytest.param({"inputs": [tensor("pixels")]}, 400, 'unknown input "pixels"', id="unknown-input"),
    pytest.param({"inputs": []}, 400, '"inputs"', id="no-inputs"),
    pytest.param({"inputs": [tensor(datatype="FP64")]}, 400, "expects FP32", id="wrong-dtype"),
    pytest.param({"inputs": [tensor(datatype="FLOAT")]}, 400, "unknown datatype", id="bad-dtype"),
    pytest.param(
        {"inputs": [tensor(shape=(3, 5))]},
        400,
        'input "input" has shape [3, 5]; model iris:1 expects [-1, 4]',
        id="wrong-shape",
    ),
    pytest.param({"inputs": [tensor(shape=(8,))]}, 400, "expects [-1, 4]", id="wrong-rank"),
    pytest.param(
        {"inputs": [tensor(shape=(2, 4), data=[1.0] * 7)]},
        400,
        "has 7 elements but its shape [2, 4] needs 8",
        id="element-count",
    ),
    pytest.param(
        {"inputs": [tensor(data=["a"] * 8)]}, 400, "cannot be read as FP32", id="strings-as-fp32"
    ),
    pytest.param({"inputs": [tensor(shape=(33, 4))]}, 400, "over the limit", id="batch-over-max"),
    pytest.param(
        {"inputs": [tensor()], "outputs": [{"name": "logits"}]},
        400,
        'unknown output "logits"',
        id="unknown-output",
    ),
    pytest.param({"inputs": [tensor(shape=(2, -4))]}, 400, "invalid shape", id="negative-dim"),
]


@pytest.mark.parametrize(("doc", "status", "message"), BAD_JSON_REQUESTS)
async def test_bad_requests_are_refused_with_a_reason(
    http: httpx.AsyncClient, doc: dict[str, Any], status: int, message: str
) -> None:
    reply = await http.post(INFER, json=doc)
    assert reply.status_code == status
    assert message in reply.json()["error"]
    await assert_still_serving(http)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param(b"{not json", "not valid JSON", id="bad-json"),
        pytest.param(b"[1, 2]", "JSON object", id="json-array"),
        pytest.param(b"", "not valid JSON", id="empty"),
    ],
)
async def test_unparseable_bodies_get_400(
    http: httpx.AsyncClient, body: bytes, message: str
) -> None:
    reply = await http.post(INFER, content=body)
    assert reply.status_code == 400
    assert message in reply.json()["error"]
    await assert_still_serving(http)


@pytest.mark.parametrize(
    ("declared", "actual", "message"),
    [
        pytest.param(32, b"\0" * 16, "only 16 remain", id="short-body"),
        pytest.param(32, b"\0" * 40, "add up to 32", id="trailing-bytes"),
        pytest.param(20, b"\0" * 20, "needs 32", id="size-does-not-fit-shape"),
    ],
)
async def test_binary_length_mismatches_get_400(
    http: httpx.AsyncClient, declared: int, actual: bytes, message: str
) -> None:
    body, headers = binary_body(declared, actual)
    reply = await http.post(INFER, content=body, headers=headers)
    assert reply.status_code == 400
    assert message in reply.json()["error"]
    await assert_still_serving(http)


async def test_header_length_outside_the_body_gets_400(http: httpx.AsyncClient) -> None:
    reply = await http.post(
        INFER, content=b"{}", headers={"Inference-Header-Content-Length": "999"}
    )
    assert reply.status_code == 400
    assert "outside the body" in reply.json()["error"]


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/v2/models/nope/infer", "'nope' is not served"),
        ("/v2/models/iris/versions/7/infer", "no loaded version '7'"),
    ],
)
async def test_unknown_model_or_version_gets_404(
    http: httpx.AsyncClient, path: str, message: str
) -> None:
    reply = await http.post(path, json={"inputs": [tensor()]})
    assert reply.status_code == 404
    assert message in reply.json()["error"]
    meta = await http.get(path.removesuffix("/infer"))
    assert meta.status_code == 404
    await assert_still_serving(http)


async def test_body_over_the_limit_gets_413(http: httpx.AsyncClient) -> None:
    big = {"inputs": [tensor(shape=(2, 4))], "pad": "x" * (1024 * 1024)}
    reply = await http.post(INFER, json=big)
    assert reply.status_code == 413
    assert "over the limit" in reply.json()["error"]
    await assert_still_serving(http)


async def test_streamed_body_over_the_limit_gets_413(http: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b" " * 65536

    reply = await http.post(INFER, content=chunks())  # no Content-Length: checked while reading
    assert reply.status_code == 413
    await assert_still_serving(http)


async def test_unknown_route_and_wrong_method(http: httpx.AsyncClient) -> None:
    missing = await http.get("/v3/nothing")
    assert missing.status_code == 404
    wrong = await http.get(INFER)
    assert wrong.status_code == 405
    assert "GET" in wrong.json()["error"]


async def test_request_id_is_echoed_or_generated(http: httpx.AsyncClient) -> None:
    given = await http.post(INFER, json={"inputs": [tensor()]}, headers={"X-Request-ID": "abc-1"})
    assert given.headers["x-request-id"] == "abc-1"
    made = await http.get("/v2/health/live")
    other = await http.get("/v2/health/live")
    assert made.headers["x-request-id"]
    assert made.headers["x-request-id"] != other.headers["x-request-id"]
    body_id = await http.post(INFER, json={"id": "req-42", "inputs": [tensor()]})
    assert body_id.json()["id"] == "req-42"
