"""Continuous batching seen from outside: concurrent streams share decode steps (read from the
real `/metrics`), a client that disconnects stops its sequence within one step, and a full
waiting queue answers 503 with Retry-After, in OpenAI's error shape."""

from __future__ import annotations

import asyncio

import httpx
import openai
import pytest
from lm_models import HeldModel
from prometheus_client.parser import text_string_to_metric_families
from served_lm import LM_NAME, Served

from maas.generate.scheduler import GenerationLimits

pytestmark = pytest.mark.timeout(60)

PROMPT = "continuous batching"


async def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"{url}/metrics")).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def sample(metrics: dict, name: str, **labels: str) -> float:  # type: ignore[type-arg]
    wanted = {"model": LM_NAME, "version": "1", **labels}
    return float(metrics.get((name, tuple(sorted(wanted.items()))), 0.0))


async def wait_for(predicate, timeout_s: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    give_up = loop.time() + timeout_s
    while not await predicate():
        assert loop.time() < give_up, "the condition never came true"
        await asyncio.sleep(0.01)


async def test_eight_streams_share_decode_steps(held_served: tuple[Served, HeldModel]) -> None:
    served, held = held_served
    scheduler = served.scheduler
    held.gate.clear()  # nothing runs until all eight are in

    async def one_stream(client: openai.AsyncOpenAI) -> str:
        stream = await client.completions.create(
            model=LM_NAME, prompt=PROMPT, max_tokens=10, temperature=0, stream=True
        )
        return "".join([chunk.choices[0].text async for chunk in stream if chunk.choices])

    async with openai.AsyncOpenAI(
        base_url=f"{served.url}/v1", api_key="unused", max_retries=0
    ) as client:
        tasks = [asyncio.ensure_future(one_stream(client)) for _ in range(8)]

        async def all_in() -> bool:
            return scheduler.running + scheduler.waiting == 8

        await wait_for(all_in)
        held.gate.set()
        texts = await asyncio.gather(*tasks)
    assert len(set(texts)) == 1  # greedy: the same text for the same prompt, batched or not
    metrics = await scrape(served.url)
    steps = sample(metrics, "maas_generate_step_sequences_count")
    sequences = sample(metrics, "maas_generate_step_sequences_sum")
    small_steps = sample(metrics, "maas_generate_step_sequences_bucket", le="4.0")
    assert sequences == 8 * 9  # every token after the first came from a decode step
    assert steps - small_steps >= 1  # at least one step decoded more than four sequences
    assert sequences / steps > 4
    assert sample(metrics, "maas_generate_output_tokens_total") == 8 * 10
    assert sample(metrics, "maas_generate_running_sequences") == 0
    assert sample(metrics, "maas_generate_kv_cache_bytes") == 0
    ttft = sample(metrics, "maas_generate_time_to_first_token_seconds_count")
    gaps = sample(metrics, "maas_generate_inter_token_latency_seconds_count")
    assert (ttft, gaps) == (8, 8 * 9)


async def test_disconnected_client_stops_its_sequence_within_one_step(
    held_served: tuple[Served, HeldModel],
) -> None:
    served, held = held_served
    scheduler = served.scheduler
    body = {"model": LM_NAME, "prompt": PROMPT, "max_tokens": 90, "stream": True}
    held.allow_steps(3)  # the prefill and two decode steps, then the worker waits
    async with (
        httpx.AsyncClient(base_url=served.url) as http,
        http.stream("POST", "/v1/completions", json=body) as response,
    ):
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                break  # the first token came
    # The client is gone. Once the server has noticed, no more steps run for it than one.

    async def noticed() -> bool:
        metrics = await scrape(served.url)
        return sample(metrics, "maas_requests_total", protocol="openai", code="cancelled") == 1

    await wait_for(noticed)
    steps_at_cancel = scheduler.steps
    held.allow_steps(1000)

    async def left() -> bool:
        return scheduler.running == 0

    await wait_for(left)
    assert scheduler.steps - steps_at_cancel <= 1
    metrics = await scrape(served.url)
    assert sample(metrics, "maas_generate_output_tokens_total") <= 4  # far from 90
    assert sample(metrics, "maas_generate_kv_cache_bytes") == 0


@pytest.mark.parametrize(
    "held_limits", [GenerationLimits(max_running=1, max_waiting=1, max_tokens=100)]
)
async def test_full_queue_is_503_with_retry_after(held_served: tuple[Served, HeldModel]) -> None:
    served, held = held_served
    scheduler = served.scheduler
    held.gate.clear()
    body = {"model": LM_NAME, "prompt": PROMPT, "max_tokens": 5}
    async with httpx.AsyncClient(base_url=served.url, timeout=30) as http:
        first = asyncio.ensure_future(http.post("/v1/completions", json=body))
        await asyncio.to_thread(held.entered.wait, 10)  # the first is running, held
        second = asyncio.ensure_future(http.post("/v1/completions", json=body))

        async def queued() -> bool:
            return scheduler.waiting == 1

        await wait_for(queued)
        refused = await http.post("/v1/completions", json=body)
        v2_refused = await http.post(f"/v2/models/{LM_NAME}/generate", json={"text_input": PROMPT})
        held.gate.set()
        answers = await asyncio.gather(first, second)
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "1"
    error = refused.json()["error"]
    assert error["type"] == "server_error"
    assert "1 sequences waiting" in error["message"]
    assert v2_refused.status_code == 503
    assert v2_refused.headers["retry-after"] == "1"
    assert [a.status_code for a in answers] == [200, 200]
