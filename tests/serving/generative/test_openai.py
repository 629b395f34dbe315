"""The OpenAI-compatible API through the official `openai` client: completions and chat,
streamed and not, seeds, stop strings, max_tokens, usage, errors in OpenAI's shape, models."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import openai
import pytest
from lm_models import greedy_by_recompute
from served_lm import LM_NAME, Served

from maas.generate.model import CausalLm
from maas.generate.tokenizer import ChatMessage, TextTokenizer

pytestmark = pytest.mark.timeout(60)

PROMPT = "hello world, the model"


@pytest.fixture
async def client(served: Served) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(
        base_url=f"{served.url}/v1", api_key="unused", max_retries=0
    ) as client:
        yield client


def expected_text(model: CausalLm, tokenizer: TextTokenizer, prompt: str, count: int) -> str:
    return tokenizer.decode(greedy_by_recompute(model, tokenizer.encode(prompt), count))


async def test_completion_is_the_greedy_text_with_usage(
    client: openai.AsyncOpenAI, causal_lm: CausalLm, tokenizer: TextTokenizer
) -> None:
    answer = await client.completions.create(
        model=LM_NAME, prompt=PROMPT, max_tokens=8, temperature=0
    )
    choice = answer.choices[0]
    assert choice.text == expected_text(causal_lm, tokenizer, PROMPT, 8)
    assert choice.finish_reason == "length"
    assert answer.object == "text_completion"
    assert answer.model == LM_NAME
    assert answer.usage is not None
    assert answer.usage.prompt_tokens == len(tokenizer.encode(PROMPT))
    assert answer.usage.completion_tokens == 8
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + 8


async def test_streamed_completion_equals_the_whole(client: openai.AsyncOpenAI) -> None:
    whole = await client.completions.create(
        model=LM_NAME, prompt=PROMPT, max_tokens=12, temperature=0
    )
    stream = await client.completions.create(
        model=LM_NAME,
        prompt=PROMPT,
        max_tokens=12,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    texts, reasons, usages = [], [], []
    async for chunk in stream:
        texts.extend(choice.text for choice in chunk.choices)
        reasons.extend(choice.finish_reason for choice in chunk.choices if choice.finish_reason)
        if chunk.usage is not None:
            usages.append(chunk.usage.completion_tokens)
    assert len(texts) > 2  # it came in pieces
    assert "".join(texts) == whole.choices[0].text
    assert reasons == ["length"]
    assert usages == [12]


async def test_chat_uses_the_default_template(
    client: openai.AsyncOpenAI, causal_lm: CausalLm, tokenizer: TextTokenizer
) -> None:
    messages = [ChatMessage("system", "be brief"), ChatMessage("user", "hello model")]
    prompt = tokenizer.render_chat(messages)
    assert prompt == "<|system|>\nbe brief\n<|user|>\nhello model\n<|assistant|>\n"
    answer = await client.chat.completions.create(
        model=LM_NAME,
        messages=[{"role": m.role, "content": m.content} for m in messages],  # type: ignore[misc]
        max_tokens=6,
        temperature=0,
    )
    assert answer.choices[0].message.role == "assistant"
    assert answer.choices[0].message.content == expected_text(causal_lm, tokenizer, prompt, 6)
    assert answer.usage is not None
    assert answer.usage.prompt_tokens == len(tokenizer.encode(prompt))
    assert answer.object == "chat.completion"


async def test_streamed_chat_equals_the_whole(client: openai.AsyncOpenAI) -> None:
    messages = [{"role": "user", "content": "tokens stream"}]
    whole = await client.chat.completions.create(
        model=LM_NAME,
        messages=messages,  # type: ignore[arg-type]
        max_tokens=10,
        temperature=0,
    )
    stream = await client.chat.completions.create(
        model=LM_NAME,
        messages=messages,  # type: ignore[arg-type]
        max_tokens=10,
        temperature=0,
        stream=True,
    )
    roles, parts, reasons = [], [], []
    async for chunk in stream:
        for choice in chunk.choices:
            roles.append(choice.delta.role)
            parts.append(choice.delta.content or "")
            reasons.append(choice.finish_reason)
    assert roles[0] == "assistant"
    assert "".join(parts) == whole.choices[0].message.content
    assert [r for r in reasons if r] == ["length"]


async def test_same_seed_same_text(client: openai.AsyncOpenAI) -> None:
    async def sample(seed: int) -> str:
        answer = await client.completions.create(
            model=LM_NAME, prompt=PROMPT, max_tokens=16, temperature=1.5, seed=seed
        )
        return answer.choices[0].text

    first, again, other = await sample(11), await sample(11), await sample(12)
    assert first == again
    assert other != first


@pytest.mark.parametrize("stream", [False, True])
async def test_stop_string_ends_the_text_before_it(
    client: openai.AsyncOpenAI, stream: bool
) -> None:
    full = await client.completions.create(
        model=LM_NAME, prompt=PROMPT, max_tokens=20, temperature=0
    )
    text = full.choices[0].text
    stop = text[6:9]
    assert len(stop) == 3
    expected = text[: text.find(stop)]
    if not stream:
        answer = await client.completions.create(
            model=LM_NAME, prompt=PROMPT, max_tokens=20, temperature=0, stop=[stop, "@@"]
        )
        assert answer.choices[0].text == expected
        assert answer.choices[0].finish_reason == "stop"
        assert answer.usage is not None
        assert answer.usage.completion_tokens < 20
        return
    chunks = await client.completions.create(
        model=LM_NAME, prompt=PROMPT, max_tokens=20, temperature=0, stop=stop, stream=True
    )
    pieces = [(c.choices[0].text, c.choices[0].finish_reason) async for c in chunks]
    assert "".join(t for t, _ in pieces) == expected
    assert pieces[-1][1] == "stop"


async def test_max_tokens_counts_tokens(client: openai.AsyncOpenAI) -> None:
    answer = await client.completions.create(
        model=LM_NAME, prompt=PROMPT, max_tokens=3, temperature=0
    )
    assert answer.usage is not None
    assert answer.usage.completion_tokens == 3


async def test_models_lists_the_generative_model(client: openai.AsyncOpenAI) -> None:
    models = await client.models.list()
    assert [model.id for model in models.data] == [LM_NAME]  # the classifier is not listed
    assert models.data[0].owned_by == "maas"


async def test_too_long_prompt_is_400_saying_the_limits(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await client.completions.create(model=LM_NAME, prompt="hello " * 200, max_tokens=5)
    err = caught.value
    assert err.status_code == 400
    assert isinstance(err.body, dict)
    assert err.body["type"] == "invalid_request_error"
    assert "context of 128 tokens" in err.body["message"]
    assert "max_tokens is 5" in err.body["message"]


async def test_a_huge_prompt_is_refused_before_tokenizing(served: Served) -> None:
    prompt = "x" * (128 * 16 + 1)
    async with httpx.AsyncClient(base_url=served.url) as http:
        chat = await http.post(
            "/v1/chat/completions",
            json={"model": LM_NAME, "messages": [{"role": "user", "content": prompt}]},
        )
        v2 = await http.post(f"/v2/models/{LM_NAME}/generate", json={"text_input": prompt})
    assert chat.status_code == 400
    assert "allows at most 2048" in chat.json()["error"]["message"]
    assert v2.status_code == 400
    assert "characters" in v2.json()["error"]


async def test_max_tokens_past_the_cap_is_400(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="this server allows at most 100"):
        await client.completions.create(model=LM_NAME, prompt=PROMPT, max_tokens=101)


async def test_unknown_model_is_404_model_not_found(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        await client.chat.completions.create(
            model="nope", messages=[{"role": "user", "content": "hi"}]
        )
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["code"] == "model_not_found"


async def test_a_model_that_does_not_generate_is_400(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="does not generate text"):
        await client.completions.create(model="iris", prompt=PROMPT)


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"temperature": 5}, "temperature"),
        ({"top_p": 0}, "top_p"),
        ({"n": 2}, "n"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"prompt": ["one", "two"]}, "prompt"),
    ],
)
async def test_bad_parameters_are_400_in_openai_shape(
    served: Served, extra: dict[str, object], param: str
) -> None:
    body = {"model": LM_NAME, "prompt": PROMPT, **extra}
    async with httpx.AsyncClient(base_url=served.url) as http:
        response = await http.post("/v1/completions", json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param


async def test_a_body_that_is_not_json_is_400_in_openai_shape(served: Served) -> None:
    async with httpx.AsyncClient(base_url=served.url) as http:
        response = await http.post("/v1/chat/completions", content=b"{nope")
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
