"""`ModelStatistics`: the Triton-style counters behind the statistics extension, per version."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from maas.batching.batcher import BatchTiming


@dataclass
class Duration:
    """A count and the nanoseconds they took in all."""

    count: int = 0
    ns: int = 0

    def add(self, count: int, ns: int) -> None:
        self.count += count
        self.ns += ns

    def to_dict(self) -> dict[str, int]:
        return {"count": self.count, "ns": self.ns}


@dataclass
class _BatchSizeStats:
    compute_input: Duration = field(default_factory=Duration)
    compute_infer: Duration = field(default_factory=Duration)
    compute_output: Duration = field(default_factory=Duration)


class ModelStatistics:
    """Counters for one loaded version, updated from the event loop and the worker threads.

    Follows the statistics extension of the v2 protocol as Triton defines it: per-request
    `success`/`fail`/`queue`/`compute_*` durations (a request is charged its whole batch's
    compute time), and per batch size the cost of each run of the model.
    """

    def __init__(self, name: str, version: str) -> None:
        self.name = name
        self.version = version
        self._lock = threading.Lock()
        self._last_inference_ms = 0
        self._inference_count = 0
        self._execution_count = 0
        self._success = Duration()
        self._fail = Duration()
        self._queue = Duration()
        self._compute_input = Duration()
        self._compute_infer = Duration()
        self._compute_output = Duration()
        self._batches: dict[int, _BatchSizeStats] = {}

    def on_batch(self, timing: BatchTiming) -> None:
        """Record one run of the model."""
        n = timing.requests
        with self._lock:
            self._execution_count += 1
            self._inference_count += timing.size
            self._last_inference_ms = int(time.time() * 1000)
            self._queue.add(n, sum(timing.queue_ns))
            self._compute_input.add(n, timing.input_ns * n)
            self._compute_infer.add(n, timing.infer_ns * n)
            self._compute_output.add(n, timing.output_ns * n)
            per_size = self._batches.get(timing.size)
            if per_size is None:
                per_size = self._batches[timing.size] = _BatchSizeStats()
            per_size.compute_input.add(1, timing.input_ns)
            per_size.compute_infer.add(1, timing.infer_ns)
            per_size.compute_output.add(1, timing.output_ns)

    def on_request(self, ok: bool, duration_ns: int) -> None:
        """Record one finished request (success or failure) and its end-to-end time."""
        with self._lock:
            (self._success if ok else self._fail).add(1, duration_ns)

    def to_dict(self) -> dict[str, Any]:
        """One entry of the `model_stats` list."""
        with self._lock:
            return {
                "name": self.name,
                "version": self.version,
                "last_inference": self._last_inference_ms,
                "inference_count": self._inference_count,
                "execution_count": self._execution_count,
                "inference_stats": {
                    "success": self._success.to_dict(),
                    "fail": self._fail.to_dict(),
                    "queue": self._queue.to_dict(),
                    "compute_input": self._compute_input.to_dict(),
                    "compute_infer": self._compute_infer.to_dict(),
                    "compute_output": self._compute_output.to_dict(),
                },
                "batch_stats": [
                    {
                        "batch_size": size,
                        "compute_input": stats.compute_input.to_dict(),
                        "compute_infer": stats.compute_infer.to_dict(),
                        "compute_output": stats.compute_output.to_dict(),
                    }
                    for size, stats in sorted(self._batches.items())
                ],
            }
