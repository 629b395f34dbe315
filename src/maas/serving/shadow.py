"""Shadow traffic: copies of live requests run on a candidate version, compared, never returned.

The copy is queued after the live answer is computed, as a task of its own, so the caller never
waits for the shadow version and its failures never reach the caller; they are only counted.
"""

from __future__ import annotations

import asyncio
import logging

import numpy as np

from maas.errors import MaasError
from maas.metrics.rollout import RolloutMetrics
from maas.serving.repository import LoadedVersion

log = logging.getLogger(__name__)

MAX_PENDING = 256  # shadow copies in flight at once; more are dropped (counted as errors)
FLOAT_RTOL = 1e-4  # two builds of one model differ in the last bits of float outputs
FLOAT_ATOL = 1e-5

Arrays = dict[str, np.ndarray]


class ShadowTraffic:
    """Runs shadow copies and counts how their answers compare with the live ones.

    Args:
        metrics: where comparisons are counted (`maas_shadow_comparisons_total`).
        timeout_s: deadline of one shadow copy.
    """

    def __init__(self, metrics: RolloutMetrics, timeout_s: float) -> None:
        self._metrics = metrics
        self._timeout_s = timeout_s
        self._tasks: set[asyncio.Task[None]] = set()

    def submit(self, shadow: LoadedVersion, inputs: Arrays, rows: int, live: Arrays) -> None:
        """Queue a copy of one request for `shadow`; returns at once."""
        if len(self._tasks) >= MAX_PENDING:
            self._count(shadow, "error")
            return
        task = asyncio.get_running_loop().create_task(self._run(shadow, inputs, rows, live))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, shadow: LoadedVersion, inputs: Arrays, rows: int, live: Arrays) -> None:
        shadow.in_flight.count += 1
        try:
            answer = await shadow.batcher.infer(inputs, rows, timeout_s=self._timeout_s)
        except MaasError as err:
            log.debug("shadow.failed", extra={"model": shadow.label, "error": str(err)})
            self._count(shadow, "error")
            return
        finally:
            shadow.in_flight.count -= 1
        self._count(shadow, "match" if outputs_agree(live, answer) else "mismatch")

    def _count(self, shadow: LoadedVersion, outcome: str) -> None:
        self._metrics.shadow_comparisons.labels(shadow.name, shadow.version, outcome).inc()

    def cancel(self) -> None:
        """Drop the copies still running (the server is stopping)."""
        for task in list(self._tasks):
            task.cancel()


def outputs_agree(live: Arrays, shadow: Arrays) -> bool:
    """Whether every output both answers share has the same shape and (nearly) the same values."""
    shared = set(live) & set(shadow)
    if not shared:
        return False
    for name in shared:
        a, b = live[name], shadow[name]
        if a.shape != b.shape:
            return False
        if a.dtype.kind == "f" or b.dtype.kind == "f":
            if not np.allclose(a, b, rtol=FLOAT_RTOL, atol=FLOAT_ATOL, equal_nan=True):
                return False
        elif not np.array_equal(a, b):
            return False
    return True
