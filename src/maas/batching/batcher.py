"""`Batcher`: a bounded queue in front of one model version's runners, merging requests.

Each runner (instance) has one worker thread. An idle worker takes whatever is queued at once,
so a lone request never pays a waiting window; while workers compute, new requests pile up and
form the next batch. The `max_queue_delay_us` window is used only to top up a batch below its
preferred size while more requests are in flight: while the workers' batches hold fewer requests
than are in flight now or were lately in flight together (`Crowd`: concurrent clients whose
transport hands their requests over one at a time, as grpcio does with unary calls). Results go
back to the event loop with one `call_soon_threadsafe` per batch.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from maas.batching.crowd import Crowd
from maas.batching.policy import BatchPolicy
from maas.errors import DeadlineExceeded, InvalidInput, MaasError, Unavailable
from maas.runtime.runner import Runner, RunnerError

log = logging.getLogger(__name__)

Arrays = dict[str, np.ndarray]


@dataclass(frozen=True)
class BatchTiming:
    """What one run of the model cost, for metrics and statistics (nanoseconds)."""

    size: int
    requests: int
    queue_ns: tuple[int, ...]
    input_ns: int
    infer_ns: int
    output_ns: int
    ok: bool


class BatchObserver(Protocol):
    """Receives one `BatchTiming` per run of the model (called on a worker thread)."""

    def on_batch(self, timing: BatchTiming) -> None:
        """Record one batch."""
        ...


@dataclass(eq=False, slots=True)
class _Pending:
    """One request waiting in the queue (a message between the loop and a worker)."""

    inputs: Arrays
    rows: int
    future: asyncio.Future[Arrays]
    loop: asyncio.AbstractEventLoop
    enqueued_ns: int
    deadline_ns: int | None = None
    timer: asyncio.TimerHandle | None = field(default=None)
    overlap_base: int = 0  # requests in flight at its arrival, less the arrivals counted then


class Batcher:
    """Merges requests for one model version into batches run by its instances.

    Args:
        runners: one loaded runner per instance; each gets a worker thread.
        policy: sizes, delays and the queue bound.
        observer: told about every batch (metrics); optional.
        name: `model:version`, for logs and error messages.
    """

    def __init__(
        self,
        runners: Sequence[Runner],
        policy: BatchPolicy,
        *,
        observer: BatchObserver | None = None,
        name: str = "",
    ) -> None:
        if not runners:
            raise InvalidInput("a batcher needs at least one runner")
        self._runners = list(runners)
        self._policy = policy
        self._observer = observer
        self._name = name
        self._queue: collections.deque[_Pending] = collections.deque()
        self._cond = threading.Condition(threading.Lock())
        self._busy = 0
        self._in_flight = 0  # requests between `infer` and its return
        self._held = 0  # requests in the batches workers have taken and not yet answered
        self._arrivals = 0
        self._crowd = Crowd()
        self._stopping = False
        self._threads: list[threading.Thread] = []

    @property
    def policy(self) -> BatchPolicy:
        """The batching policy in force."""
        return self._policy

    @property
    def queue_depth(self) -> int:
        """Requests waiting now (not counting those being computed)."""
        return len(self._queue)

    def start(self) -> None:
        """Start one worker thread per runner; idempotent."""
        if self._threads:
            return
        for index, runner in enumerate(self._runners):
            thread = threading.Thread(
                target=self._work,
                args=(runner,),
                name=f"maas-batcher-{self._name}-{index}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Let the workers finish what is queued, then end them; new requests get 503."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout_s)
        self._threads.clear()

    async def infer(self, inputs: Arrays, rows: int, *, timeout_s: float | None = None) -> Arrays:
        """Queue one request of `rows` rows and wait for exactly its own output rows.

        Raises:
            Unavailable: the queue is full or the batcher is stopping.
            DeadlineExceeded: `timeout_s` passed before the result came.
            MaasError: the batch this request ran in failed.
        """
        loop = asyncio.get_running_loop()
        item = _Pending(inputs, rows, loop.create_future(), loop, time.perf_counter_ns())
        if timeout_s is not None:
            item.deadline_ns = item.enqueued_ns + int(timeout_s * 1e9)
        with self._cond:
            if self._stopping:
                raise Unavailable(f"model {self._name} is shutting down")
            if len(self._queue) >= self._policy.max_queue_size:
                raise Unavailable(
                    f"model {self._name} queue is full ({self._policy.max_queue_size} waiting); "
                    "retry later"
                )
            self._in_flight += 1
            self._arrivals += 1
            item.overlap_base = self._in_flight - self._arrivals
            self._queue.append(item)
            self._cond.notify()
        if timeout_s is not None:
            item.timer = loop.call_later(timeout_s, self._expire, item)
        try:
            return await item.future
        except asyncio.CancelledError:
            self._withdraw(item)
            raise
        finally:
            if item.timer is not None:
                item.timer.cancel()
            with self._cond:
                self._in_flight -= 1
                # every request in flight at some time between its arrival and now
                self._crowd.record(item.overlap_base + self._arrivals)

    def _withdraw(self, item: _Pending) -> bool:
        with self._cond:
            try:
                self._queue.remove(item)
            except ValueError:
                return False
            return True

    def _expire(self, item: _Pending) -> None:
        self._withdraw(item)
        if not item.future.done():
            item.future.set_exception(
                DeadlineExceeded(f"model {self._name} did not answer within the request deadline")
            )

    # -- worker side ---------------------------------------------------------------------

    def _work(self, runner: Runner) -> None:
        while True:
            batch = self._take()
            if batch is None:
                return
            try:
                self._run(runner, batch)
            finally:
                with self._cond:
                    self._busy -= 1
                    self._held -= len(batch)

    def _take(self) -> list[_Pending] | None:
        """Wait for work; return the next batch (and count this worker busy), None to exit."""
        with self._cond:
            while True:
                while not self._queue:
                    if self._stopping:
                        return None
                    self._cond.wait()
                batch, rows = self._pop_rows([], 0)
                if batch:
                    break
            if self._policy.max_queue_delay_us > 0 and self._expects_more():
                self._top_up(batch, rows)
            self._busy += 1
            return batch

    def _expects_more(self) -> bool:
        """Whether requests no worker holds yet are in flight now or were lately (lock held)."""
        return self._held < max(self._in_flight, self._crowd.peak)

    def _top_up(self, batch: list[_Pending], rows: int) -> None:
        """While more requests are in flight, wait a little for the batch to reach its target
        size (lock held)."""
        target = self._policy.target_size(rows)
        deadline = time.monotonic() + self._policy.max_queue_delay_us / 1e6
        while rows < target and self._expects_more():
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._stopping:
                return
            if not self._queue:
                self._cond.wait(remaining)
                continue
            before = rows
            batch, rows = self._pop_rows(batch, rows)
            if rows == before:
                return  # the next request does not fit; run what we have

    def _pop_rows(self, batch: list[_Pending], rows: int) -> tuple[list[_Pending], int]:
        """Move queued requests into `batch` while they fit `max_batch_size` (lock held)."""
        limit = self._policy.max_batch_size
        now = time.perf_counter_ns()
        queue = self._queue
        while queue:
            item = queue[0]
            if item.deadline_ns is not None and now > item.deadline_ns:
                queue.popleft()
                continue  # its timer on the loop answers it
            if batch and rows + item.rows > limit:
                break
            queue.popleft()
            batch.append(item)
            rows += item.rows
            self._held += 1
        return batch, rows

    def _run(self, runner: Runner, batch: list[_Pending]) -> None:
        t0 = time.perf_counter_ns()
        queue_ns = tuple(t0 - item.enqueued_ns for item in batch)
        results: list[Arrays] | None = None
        error: MaasError | None = None
        t1 = t2 = t0
        try:
            inputs = merge_rows([item.inputs for item in batch])
            t1 = time.perf_counter_ns()
            outputs = runner.infer(inputs)
            t2 = time.perf_counter_ns()
            results = split_rows(outputs, [item.rows for item in batch])
        except MaasError as err:
            error = err
        except Exception as err:  # a worker loop is a boundary: fail this batch, keep serving
            log.exception("batch.failed", extra={"model": self._name, "size": len(batch)})
            error = RunnerError(f"model {self._name} failed on this batch")
            error.__cause__ = err
        t3 = time.perf_counter_ns()
        if self._observer is not None:
            timing = BatchTiming(
                size=sum(item.rows for item in batch),
                requests=len(batch),
                queue_ns=queue_ns,
                input_ns=t1 - t0,
                infer_ns=t2 - t1,
                output_ns=t3 - t2,
                ok=error is None,
            )
            self._observer.on_batch(timing)
        _deliver(batch, results, error)


def merge_rows(parts: list[Arrays]) -> Arrays:
    """Concatenate the requests' inputs along axis 0 (a lone request passes through)."""
    if len(parts) == 1:
        return parts[0]
    return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}


def split_rows(outputs: Arrays, rows: list[int]) -> list[Arrays]:
    """Cut the batch's outputs back into one dict per request, checking the row count."""
    total = sum(rows)
    for name, array in outputs.items():
        if array.ndim == 0 or array.shape[0] != total:
            raise RunnerError(
                f"output {name!r} has {array.shape[0] if array.ndim else 0} rows "
                f"for a batch of {total}"
            )
    if len(rows) == 1:
        return [outputs]
    results: list[Arrays] = []
    start = 0
    for count in rows:
        end = start + count
        results.append({name: array[start:end] for name, array in outputs.items()})
        start = end
    return results


def _deliver(batch: list[_Pending], results: list[Arrays] | None, error: MaasError | None) -> None:
    """Hand results back to each request's event loop: one wake-up per loop per batch."""
    by_loop: dict[asyncio.AbstractEventLoop, list[int]] = {}
    for index, item in enumerate(batch):
        by_loop.setdefault(item.loop, []).append(index)
    for loop, indexes in by_loop.items():
        try:
            loop.call_soon_threadsafe(
                _resolve, [batch[i] for i in indexes], results, indexes, error
            )
        except RuntimeError:
            log.debug("batch.loop_closed")  # the caller's loop ended; nobody waits for these


def _resolve(
    items: list[_Pending],
    results: list[Arrays] | None,
    indexes: list[int],
    error: MaasError | None,
) -> None:
    for item, index in zip(items, indexes, strict=True):
        future = item.future
        if future.done():
            continue
        if results is None:
            future.set_exception(error or RunnerError("batch failed"))
        else:
            future.set_result(results[index])
