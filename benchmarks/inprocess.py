"""In-process onnxruntime throughput: the reference the served numbers are compared with."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort

from benchmarks.models import BenchModel


@dataclass(frozen=True)
class InProcessResult:
    """Rows per second and milliseconds per call of one session at one batch size."""

    model: str
    batch: int
    rows_per_s: float
    batch_ms: float


def session(model: BenchModel, threads: int = 1) -> ort.InferenceSession:
    """An onnxruntime session on `threads` threads (one, like one serving core)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(model.onnx_bytes, options, providers=["CPUExecutionProvider"])


def measure(
    sess: ort.InferenceSession, model: BenchModel, batch: int, duration_s: float
) -> InProcessResult:
    """Call the session back to back on one fixed batch for `duration_s` (after a warm-up)."""
    rng = np.random.default_rng(batch)
    feed = {"input": rng.random((batch, *model.row_shape), dtype=np.float32)}
    for _ in range(3):
        sess.run(None, feed)
    calls = 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < duration_s:
        sess.run(None, feed)
        calls += 1
    return InProcessResult(model.name, batch, calls * batch / elapsed, elapsed / calls * 1000)


def sweep(
    model: BenchModel, batches: Iterable[int], duration_s: float
) -> dict[int, InProcessResult]:
    """Measure every batch size in turn on one single-threaded session."""
    sess = session(model)
    return {batch: measure(sess, model, batch, duration_s) for batch in batches}
