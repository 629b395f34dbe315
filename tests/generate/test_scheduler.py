"""`Scheduler`: continuous batching by behaviour: results equal a cache-free recompute, decode
steps batch sequences of different lengths, the KV budget and the waiting queue bound hold,
a cancelled sequence leaves within one step, deadlines end sequences."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from lm_models import HeldModel, greedy_by_recompute
from prometheus_client import CollectorRegistry

from maas.errors import DeadlineExceeded, InvalidInput, Unavailable
from maas.generate.kvcache import cache_bytes
from maas.generate.model import CausalLm
from maas.generate.sampling import SamplingParams
from maas.generate.scheduler import GenerationLimits, Scheduler
from maas.generate.sequence import Generation
from maas.metrics.generation import GenerationMetrics

pytestmark = pytest.mark.timeout(60)

PROMPTS = ([5, 9, 14], [7], [20, 21, 22, 23, 24, 25, 26], [40, 41])


async def collect(generation: Generation) -> list[int]:
    tokens: list[int] = []
    async for event in generation.events():
        tokens.extend(event.token_ids)
    return tokens


@pytest.fixture
def held(causal_lm: CausalLm) -> HeldModel:
    return HeldModel(causal_lm)


@pytest.fixture
def metrics() -> GenerationMetrics:
    return GenerationMetrics(CollectorRegistry())


def make_scheduler(
    model: HeldModel | CausalLm, metrics: GenerationMetrics | None = None, **limits: int
) -> Scheduler:
    observer = metrics.for_version("tiny", "1") if metrics is not None else None
    scheduler = Scheduler(model, GenerationLimits(**limits), observer=observer, name="tiny:1")
    scheduler.start()
    return scheduler


@pytest.fixture
def scheduler(held: HeldModel, metrics: GenerationMetrics) -> Iterator[Scheduler]:
    scheduler = make_scheduler(held, metrics)
    yield scheduler
    held.gate.set()
    scheduler.stop()


def step_histogram(metrics: GenerationMetrics) -> tuple[float, float]:
    """(decode steps, sequences decoded in all) from the real histogram."""
    child = metrics.step_sequences.labels("tiny", "1")
    samples = {s.name: s.value for s in child.collect()[0].samples}
    return samples["maas_generate_step_sequences_count"], samples[
        "maas_generate_step_sequences_sum"
    ]


async def test_batched_sequences_equal_their_own_recompute(
    scheduler: Scheduler, held: HeldModel, causal_lm: CausalLm, metrics: GenerationMetrics
) -> None:
    greedy = SamplingParams(max_tokens=10, temperature=0.0)
    held.gate.clear()  # all four are queued before any step runs
    generations = [scheduler.submit(p, greedy, deadline_s=None) for p in PROMPTS]
    held.gate.set()
    results = await asyncio.gather(*(collect(g) for g in generations))
    for prompt, tokens in zip(PROMPTS, results, strict=True):
        assert tokens == greedy_by_recompute(causal_lm, prompt, 10)
    steps, decoded = step_histogram(metrics)
    assert decoded == 4 * 9  # every token after the first came from a decode step
    assert steps < decoded / 2  # steps ran several sequences of different lengths at once


async def test_new_sequences_join_between_steps(scheduler: Scheduler, held: HeldModel) -> None:
    greedy = SamplingParams(max_tokens=6, temperature=0.0)
    held.gate.clear()
    first = scheduler.submit(PROMPTS[0], greedy, deadline_s=None)
    await asyncio.to_thread(held.entered.wait, 10)  # the first's prefill is under way
    second = scheduler.submit(PROMPTS[1], greedy, deadline_s=None)
    held.gate.set()
    results = await asyncio.gather(collect(first), collect(second))
    assert [len(tokens) for tokens in results] == [6, 6]
    assert held.shapes[0] == (1, 3)  # the first's prefill ran alone
    assert (2, 1) in held.shapes  # later decode steps carried both sequences


async def test_same_seed_same_tokens(scheduler: Scheduler) -> None:
    params = SamplingParams(max_tokens=12, temperature=1.0, top_p=0.9, seed=7)
    runs = [await collect(scheduler.submit(PROMPTS[0], params, deadline_s=None)) for _ in "ab"]
    other = SamplingParams(max_tokens=12, temperature=1.0, top_p=0.9, seed=8)
    different = await collect(scheduler.submit(PROMPTS[0], other, deadline_s=None))
    assert runs[0] == runs[1]
    assert different != runs[0]


async def test_cancelled_sequence_leaves_within_one_step(
    scheduler: Scheduler, held: HeldModel
) -> None:
    params = SamplingParams(max_tokens=100, temperature=0.0)
    held.gate.clear()  # both are queued before anything runs
    keeper = asyncio.ensure_future(collect(scheduler.submit(PROMPTS[0], params, deadline_s=None)))
    victim = scheduler.submit(PROMPTS[1], params, deadline_s=None)
    held.allow_steps(6)  # six model runs (prefills and decode steps), then the worker waits
    held.gate.set()
    reading = asyncio.ensure_future(collect(victim))
    while len(victim.output_ids) < 2:
        await asyncio.sleep(0.005)
    reading.cancel()  # the client goes away while the worker waits for its next step
    with pytest.raises(asyncio.CancelledError):
        await reading
    held.allow_steps(1000)
    await keeper
    assert victim.cancelled_at_step is not None
    assert victim.left_at_step is not None
    assert victim.left_at_step - victim.cancelled_at_step <= 1
    assert victim.finish_reason == "cancelled"
    assert len(victim.output_ids) <= 7
    assert scheduler.running == 0
    assert scheduler.kv_cache_bytes == 0


async def test_kv_budget_makes_sequences_wait(held: HeldModel, metrics: GenerationMetrics) -> None:
    one = cache_bytes(held.config, 3 + 8)  # the longest prompt here plus max_tokens
    scheduler = make_scheduler(held, metrics, kv_cache_bytes=one + one // 2)
    try:
        params = SamplingParams(max_tokens=8, temperature=0.0)
        generations = [scheduler.submit(PROMPTS[0], params, deadline_s=None) for _ in range(3)]
        results = await asyncio.gather(*(collect(g) for g in generations))
    finally:
        scheduler.stop()
    assert all(len(tokens) == 8 for tokens in results)
    assert max(held.batches) == 1  # the budget fits one sequence: never two in a step
    assert scheduler.kv_cache_bytes == 0


async def test_full_waiting_queue_is_refused(held: HeldModel) -> None:
    scheduler = make_scheduler(held, max_running=1, max_waiting=2)
    params = SamplingParams(max_tokens=50, temperature=0.0)
    try:
        held.gate.clear()
        taken = [scheduler.submit(PROMPTS[1], params, deadline_s=None)]
        await asyncio.to_thread(held.entered.wait, 10)  # the first is running (held)
        taken += [scheduler.submit(PROMPTS[1], params, deadline_s=None) for _ in range(2)]
        with pytest.raises(Unavailable, match="2 sequences waiting; retry in 1 s"):
            scheduler.submit(PROMPTS[1], params, deadline_s=None)
        for generation in taken:
            generation.cancel()
    finally:
        held.gate.set()
        scheduler.stop()


async def test_deadline_ends_a_sequence(scheduler: Scheduler) -> None:
    params = SamplingParams(max_tokens=100, temperature=0.0)
    generation = scheduler.submit(PROMPTS[0], params, deadline_s=time.monotonic() - 1)
    with pytest.raises(DeadlineExceeded):
        await collect(generation)


@pytest.mark.parametrize(
    ("prompt", "max_tokens", "message"),
    [
        ([1] * 120, 20, "prompt has 120 tokens and max_tokens is 20; .* context of 128"),
        ([1], 5000, "max_tokens is 5000; this server allows at most 2048"),
        ([], 5, "the prompt is empty"),
    ],
)
def test_requests_that_cannot_fit_are_refused(
    held: HeldModel, prompt: list[int], max_tokens: int, message: str
) -> None:
    scheduler = Scheduler(held, GenerationLimits(), name="tiny:1")
    with pytest.raises(InvalidInput, match=message):
        scheduler.check_request(len(prompt), max_tokens)


async def test_stop_ends_every_sequence_with_503(held: HeldModel) -> None:
    scheduler = make_scheduler(held, max_running=1)
    held.allow_steps(1)  # the first prefill, then the worker waits
    params = SamplingParams(max_tokens=50, temperature=0.0)
    generations = [scheduler.submit(PROMPTS[0], params, deadline_s=None) for _ in range(2)]
    stopping = asyncio.get_running_loop().run_in_executor(None, scheduler.stop)
    while True:  # until the scheduler refuses new work: it is stopping
        try:
            scheduler.submit(PROMPTS[0], params, deadline_s=None).cancel()
        except Unavailable:
            break
        await asyncio.sleep(0.005)
    held.allow_steps(100)
    await stopping
    for generation in generations:
        with pytest.raises(Unavailable, match="shutting down"):
            await collect(generation)
