"""The v2 generate extension over httpx: `/generate` and `/generate_stream`, by model and by
version, its errors in the v2 shape, and `/infer` refusing a generative model."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import orjson
import pytest
from lm_models import greedy_by_recompute
from served_lm import LM_NAME, Served

from maas.generate.model import CausalLm
from maas.generate.tokenizer import TextTokenizer

pytestmark = pytest.mark.timeout(60)

PROMPT = "the quick brown fox"


@pytest.fixture
async def http(served: Served) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=served.url, timeout=30) as client:
        yield client


@pytest.mark.parametrize("path", [f"/v2/models/{LM_NAME}", f"/v2/models/{LM_NAME}/versions/1"])
async def test_generate_answers_the_greedy_text(
    http: httpx.AsyncClient, causal_lm: CausalLm, tokenizer: TextTokenizer, path: str
) -> None:
    body = {"text_input": PROMPT, "parameters": {"max_tokens": 7, "temperature": 0}}
    response = await http.post(f"{path}/generate", json=body)
    assert response.status_code == 200
    doc = response.json()
    ids = tokenizer.encode(PROMPT)
    assert doc["text_output"] == tokenizer.decode(greedy_by_recompute(causal_lm, ids, 7))
    assert doc["model_name"] == LM_NAME
    assert doc["model_version"] == "1"
    assert doc["finish_reason"] == "length"
    assert doc["usage"] == {
        "prompt_tokens": len(ids),
        "completion_tokens": 7,
        "total_tokens": len(ids) + 7,
    }


async def test_generate_stream_sends_the_same_text_in_events(http: httpx.AsyncClient) -> None:
    body = {"text_input": PROMPT, "parameters": {"max_tokens": 9, "temperature": 0}}
    whole = (await http.post(f"/v2/models/{LM_NAME}/generate", json=body)).json()
    events = []
    async with http.stream("POST", f"/v2/models/{LM_NAME}/generate_stream", json=body) as answer:
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "text/event-stream"
        async for line in answer.aiter_lines():
            if line.startswith("data: "):
                events.append(orjson.loads(line[len("data: ") :]))
    assert len(events) > 2
    assert "".join(event["text_output"] for event in events) == whole["text_output"]
    assert [event["finish_reason"] for event in events][-1] == "length"
    assert events[-1]["usage"]["completion_tokens"] == 9


async def test_generate_stops_at_a_stop_string(http: httpx.AsyncClient) -> None:
    body = {"text_input": PROMPT, "parameters": {"max_tokens": 20, "temperature": 0}}
    text = (await http.post(f"/v2/models/{LM_NAME}/generate", json=body)).json()["text_output"]
    stop = text[4:7]
    body["parameters"]["stop"] = stop  # type: ignore[index]
    doc = (await http.post(f"/v2/models/{LM_NAME}/generate", json=body)).json()
    assert doc["text_output"] == text[: text.find(stop)]
    assert doc["finish_reason"] == "stop"


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        (f"/v2/models/{LM_NAME}/generate", {"parameters": {}}, 400, "text_input"),
        (
            f"/v2/models/{LM_NAME}/generate",
            {"text_input": "hello " * 200},
            400,
            "context of 128 tokens",
        ),
        (
            f"/v2/models/{LM_NAME}/generate",
            {"text_input": "hi", "parameters": {"temperature": -1}},
            400,
            "temperature",
        ),
        ("/v2/models/nope/generate", {"text_input": "hi"}, 404, "not served"),
        ("/v2/models/iris/generate_stream", {"text_input": "hi"}, 400, "does not generate"),
        (f"/v2/models/{LM_NAME}/versions/9/generate", {"text_input": "hi"}, 404, "version"),
    ],
)
async def test_generate_errors_in_the_v2_shape(
    http: httpx.AsyncClient, path: str, body: dict[str, object], status: int, message: str
) -> None:
    response = await http.post(path, json=body)
    assert response.status_code == status
    assert message in response.json()["error"]


async def test_infer_on_a_generative_model_points_at_generation(http: httpx.AsyncClient) -> None:
    inputs = [
        {"name": "input_ids", "datatype": "INT64", "shape": [1, 1], "data": [5]},
        {"name": "attention_mask", "datatype": "INT64", "shape": [1, 1], "data": [1]},
        {"name": "position_ids", "datatype": "INT64", "shape": [1, 1], "data": [0]},
    ]
    inputs += [
        {
            "name": f"past_key_values.{i}.{kind}",
            "datatype": "FP32",
            "shape": [1, 2, 0, 8],
            "data": [],
        }
        for i in range(2)
        for kind in ("key", "value")
    ]
    response = await http.post(f"/v2/models/{LM_NAME}/infer", json={"inputs": inputs})
    assert response.status_code == 400
    assert "generates text: use /v1/completions" in response.json()["error"]
