"""Peak resident memory of a piece of work: the process's RSS sampled in a background thread."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import psutil

T = TypeVar("T")
SAMPLE_INTERVAL_S = 0.001  # fine enough to catch a model load's peak; cheap for one thread


@dataclass(frozen=True)
class MemoryPeak:
    """RSS before the work and the highest RSS seen while it ran, in bytes."""

    baseline_bytes: int
    peak_bytes: int

    @property
    def delta_bytes(self) -> int:
        """How far the work pushed resident memory above where it started."""
        return max(0, self.peak_bytes - self.baseline_bytes)


def measure_peak(work: Callable[[], T]) -> tuple[T, MemoryPeak]:
    """Run `work()` and return its result with the peak RSS delta it caused."""
    process = psutil.Process()
    baseline = process.memory_info().rss
    peak = [baseline]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], process.memory_info().rss)
            done.wait(SAMPLE_INTERVAL_S)

    sampler = threading.Thread(target=sample, name="maas-memory-sampler", daemon=True)
    sampler.start()
    try:
        result = work()
    finally:
        done.set()
        sampler.join()
    peak[0] = max(peak[0], process.memory_info().rss)
    return result, MemoryPeak(baseline, peak[0])
