"""`Batcher`: merging, splitting, limits, failures, deadlines and cancellation."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import numpy as np
import pytest
from onnx_models import Classifier, build_classifier

from maas.batching.batcher import Batcher, BatchTiming, merge_rows, split_rows
from maas.batching.policy import BatchPolicy
from maas.errors import DeadlineExceeded, Unavailable
from maas.runtime.runner import ModelRunner, RunnerError

Arrays = dict[str, np.ndarray]


class Recorder:
    """A batch observer that keeps every timing."""

    def __init__(self) -> None:
        self.timings: list[BatchTiming] = []
        self._lock = threading.Lock()

    def on_batch(self, timing: BatchTiming) -> None:
        with self._lock:
            self.timings.append(timing)


class HeldRunner:
    """Wraps a real runner; holds each call until `gate` opens (stands in for a slow model)."""

    def __init__(self, runner: ModelRunner) -> None:
        self.runner = runner
        self.entered = threading.Event()
        self.gate = threading.Event()
        self.calls: list[int] = []

    def infer(self, inputs: Arrays) -> Arrays:
        self.calls.append(next(iter(inputs.values())).shape[0])
        self.entered.set()
        self.gate.wait(30)
        return self.runner.infer(inputs)


class PoisonRunner:
    """Fails any batch holding a NaN (a model that crashes on some inputs)."""

    def __init__(self, runner: ModelRunner) -> None:
        self.runner = runner

    def infer(self, inputs: Arrays) -> Arrays:
        if np.isnan(inputs["input"]).any():
            raise RuntimeError("kernel crashed")
        return self.runner.infer(inputs)


class ShortRunner:
    """Returns one row too few (a model that breaks the row contract)."""

    def __init__(self, runner: ModelRunner) -> None:
        self.runner = runner

    def infer(self, inputs: Arrays) -> Arrays:
        return {k: v[:-1] for k, v in self.runner.infer(inputs).items()}


@pytest.fixture(scope="module")
def classifier() -> Classifier:
    return build_classifier(4, 3, seed=2)


@pytest.fixture
def runner(classifier: Classifier) -> ModelRunner:
    model_runner = ModelRunner(classifier.model_bytes, name="m:1")
    model_runner.load()
    return model_runner


@pytest.fixture
def held(runner: ModelRunner) -> Iterator[HeldRunner]:
    held_runner = HeldRunner(runner)
    yield held_runner
    held_runner.gate.set()


def rows(n: int, start: int = 0) -> np.ndarray:
    return np.arange(start * 4, (start + n) * 4, dtype=np.float32).reshape(n, 4) / 10


async def wait_for_depth(batcher: Batcher, depth: int) -> None:
    while batcher.queue_depth != depth:
        await asyncio.sleep(0.005)


async def test_concurrent_requests_share_batches_and_get_their_own_rows(
    held: HeldRunner, classifier: Classifier
) -> None:
    recorder = Recorder()
    batcher = Batcher([held], BatchPolicy(max_batch_size=4), observer=recorder, name="m:1")
    batcher.start()
    try:
        first = asyncio.create_task(batcher.infer({"input": rows(1)}, 1))
        assert await asyncio.to_thread(held.entered.wait, 10)
        inputs = [rows(1 + i % 2, start=i * 3) for i in range(8)]
        tasks = [asyncio.create_task(batcher.infer({"input": x}, len(x))) for x in inputs]
        await wait_for_depth(batcher, 8)  # all queued while the worker is held
        held.gate.set()
        results = await asyncio.gather(*tasks)
        await first
    finally:
        batcher.stop()
    for x, out in zip(inputs, results, strict=True):
        np.testing.assert_allclose(out["probabilities"], classifier.expected(x), atol=1e-5)
        assert out["label"].shape == (len(x),)
    sizes = [t.size for t in recorder.timings]
    assert sum(sizes) == 1 + sum(len(x) for x in inputs)
    assert max(sizes) <= 4
    assert len(sizes) < 9  # requests were merged
    assert held.calls == sizes


async def test_a_failed_batch_fails_only_its_own_requests(runner: ModelRunner) -> None:
    recorder = Recorder()
    batcher = Batcher([PoisonRunner(runner)], BatchPolicy(max_batch_size=1), observer=recorder)
    batcher.start()
    try:
        bad = np.full((1, 4), np.nan, dtype=np.float32)
        outcomes = await asyncio.gather(
            batcher.infer({"input": rows(1)}, 1),
            batcher.infer({"input": bad}, 1),
            batcher.infer({"input": rows(1, 5)}, 1),
            return_exceptions=True,
        )
    finally:
        batcher.stop()
    assert isinstance(outcomes[1], RunnerError)
    assert isinstance(outcomes[0], dict)
    assert isinstance(outcomes[2], dict)
    assert outcomes[2]["probabilities"].shape == (1, 3)
    assert [t.ok for t in recorder.timings].count(False) == 1


async def test_output_rows_are_checked(runner: ModelRunner) -> None:
    batcher = Batcher([ShortRunner(runner)], BatchPolicy())
    batcher.start()
    try:
        with pytest.raises(RunnerError, match="rows for a batch of 3"):
            await batcher.infer({"input": rows(3)}, 3)
    finally:
        batcher.stop()


async def test_full_queue_is_refused_at_once(held: HeldRunner) -> None:
    batcher = Batcher([held], BatchPolicy(max_queue_size=2), name="m:1")
    batcher.start()
    try:
        running = asyncio.create_task(batcher.infer({"input": rows(1)}, 1))
        assert await asyncio.to_thread(held.entered.wait, 10)
        queued = [asyncio.create_task(batcher.infer({"input": rows(1)}, 1)) for _ in range(2)]
        await wait_for_depth(batcher, 2)
        with pytest.raises(Unavailable, match="queue is full"):
            await batcher.infer({"input": rows(1)}, 1)
        held.gate.set()
        done = await asyncio.gather(running, *queued)
    finally:
        batcher.stop()
    assert [d["label"].shape for d in done] == [(1,), (1,), (1,)]


async def test_cancelled_request_leaves_the_queue(held: HeldRunner) -> None:
    batcher = Batcher([held], BatchPolicy(max_batch_size=8))
    batcher.start()
    try:
        running = asyncio.create_task(batcher.infer({"input": rows(1)}, 1))
        assert await asyncio.to_thread(held.entered.wait, 10)
        doomed = asyncio.create_task(batcher.infer({"input": rows(2)}, 2))
        kept = asyncio.create_task(batcher.infer({"input": rows(1)}, 1))
        await wait_for_depth(batcher, 2)
        doomed.cancel()
        await asyncio.gather(doomed, return_exceptions=True)
        assert batcher.queue_depth == 1
        held.gate.set()
        await asyncio.gather(running, kept)
    finally:
        batcher.stop()
    assert held.calls == [1, 1]  # the cancelled request's rows never reached the model


async def test_deadline_passed_in_queue_answers_deadline_exceeded(held: HeldRunner) -> None:
    batcher = Batcher([held], BatchPolicy(max_batch_size=8))
    batcher.start()
    try:
        running = asyncio.create_task(batcher.infer({"input": rows(1)}, 1))
        assert await asyncio.to_thread(held.entered.wait, 10)
        with pytest.raises(DeadlineExceeded):
            await batcher.infer({"input": rows(3)}, 3, timeout_s=0.05)
        assert batcher.queue_depth == 0
        held.gate.set()
        await running
    finally:
        batcher.stop()
    assert held.calls == [1]


async def test_stop_finishes_queued_work_then_refuses(runner: ModelRunner) -> None:
    batcher = Batcher([runner, runner], BatchPolicy(instances=2))
    batcher.start()
    results = await asyncio.gather(*(batcher.infer({"input": rows(1, i)}, 1) for i in range(20)))
    assert len(results) == 20
    batcher.stop()
    with pytest.raises(Unavailable, match="shutting down"):
        await batcher.infer({"input": rows(1)}, 1)


def test_merge_and_split_rows_round_trip() -> None:
    parts = [{"a": rows(2)}, {"a": rows(1, 7)}, {"a": rows(3, 9)}]
    merged = merge_rows(parts)
    assert merged["a"].shape == (6, 4)
    back = split_rows(merged, [2, 1, 3])
    for part, got in zip(parts, back, strict=True):
        np.testing.assert_array_equal(part["a"], got["a"])
    assert merge_rows(parts[:1]) is parts[0]
    with pytest.raises(RunnerError, match="5 rows for a batch of 6"):
        split_rows({"a": rows(5)}, [2, 1, 3])


async def test_idle_instance_tops_up_while_another_computes(runner: ModelRunner) -> None:
    busy, topping = HeldRunner(runner), HeldRunner(runner)
    topping.gate.set()  # the second instance runs as soon as it has its batch
    recorder = Recorder()
    policy = BatchPolicy(
        max_batch_size=8, preferred_batch_sizes=(3,), max_queue_delay_us=1_000_000, instances=2
    )
    batcher = Batcher([busy, topping], policy, observer=recorder)
    batcher.start()
    try:
        first = asyncio.create_task(batcher.infer({"input": rows(1)}, 1))
        assert await asyncio.to_thread(busy.entered.wait, 10)  # instance 1 is computing
        rest = [asyncio.create_task(batcher.infer({"input": rows(1, i)}, 1)) for i in range(3)]
        await asyncio.gather(*rest)
        busy.gate.set()
        await first
    finally:
        batcher.stop()
    assert busy.calls == [1]
    # instance 2 waited (within the window) to fill its preferred size of 3 instead of running 1
    assert topping.calls == [3]
    assert sorted(t.size for t in recorder.timings) == [1, 3]
