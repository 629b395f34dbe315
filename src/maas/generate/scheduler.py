"""`Scheduler`: continuous batching of token generation for one causal LM.

One worker thread runs the model. Each iteration (a *step*) it drops the sequences whose client
left or whose deadline passed, admits waiting sequences while the KV-cache budget and the batch
cap allow (their prompts run together as one prefill), then runs one decode step for every
sequence that was already running, whatever its length (left-padded into one batch). Sequences
that finish leave at once and free their cache. New tokens go back to the event loop with one
`call_soon_threadsafe` per loop per step. Reads like `batching.batcher`: typed pending items, one
wake-up per step, a cancelled request leaves within one step.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from maas.errors import DeadlineExceeded, InvalidInput, Unavailable
from maas.generate.kvcache import KvCache, StepRow, cache_bytes, pack_step, unpack_step
from maas.generate.model import StepModel
from maas.generate.sampling import SamplingParams, pick_token
from maas.generate.sequence import Generation, TokenEvent
from maas.runtime.runner import RunnerError

log = logging.getLogger(__name__)

FINISH_STOP = "stop"  # the end-of-text token (or a stop string, decided by the text layer)
FINISH_LENGTH = "length"  # max_tokens reached


@dataclass(frozen=True, slots=True)
class GenerationLimits:
    """Bounds of one scheduler.

    Attributes:
        max_running: most sequences in one decode step.
        max_waiting: sequences that may wait for admission; one more is refused (503).
        kv_cache_bytes: KV-cache memory all running sequences may hold together.
        max_tokens: the most `max_tokens` a request may ask for.
        retry_after_s: what a refused client is told to wait.
    """

    max_running: int = 16
    max_waiting: int = 64
    kv_cache_bytes: int = 1024**3
    max_tokens: int = 2048
    retry_after_s: float = 1.0

    def __post_init__(self) -> None:
        for name in ("max_running", "max_waiting", "kv_cache_bytes", "max_tokens"):
            if getattr(self, name) < 1:
                raise InvalidInput(f"generation limit {name} must be at least 1")


class GenerationObserver(Protocol):
    """Told about steps and tokens (called on the worker thread): metrics."""

    def on_step(self, sequences: int) -> None:
        """One decode step ran over `sequences` sequences."""
        ...

    def on_token(self, is_first: bool, seconds: float) -> None:
        """A token came: `seconds` since submission (first) or since the previous token."""
        ...


@dataclass(slots=True)
class _Plan:
    """What one step runs: the sequences admitted now (prefill) and those decoding."""

    admitted: list[Generation]
    decoding: list[Generation]


class Scheduler:
    """Continuous batching over one causal LM.

    Args:
        model: the loaded model (its `step` runs on the worker thread).
        limits: batch cap, waiting queue, KV-cache budget and the `max_tokens` cap.
        observer: told about steps and tokens (metrics); optional.
        name: `model:version`, for logs and error messages.
    """

    def __init__(
        self,
        model: StepModel,
        limits: GenerationLimits,
        *,
        observer: GenerationObserver | None = None,
        name: str = "",
    ) -> None:
        self._model = model
        self._config = model.config
        self._limits = limits
        self._observer = observer
        self._name = name
        self._waiting: collections.deque[Generation] = collections.deque()
        self._running: list[Generation] = []
        self._cond = threading.Condition(threading.Lock())
        self._reserved_bytes = 0
        self._steps = 0
        self._stopping = False
        self._thread: threading.Thread | None = None

    @property
    def limits(self) -> GenerationLimits:
        return self._limits

    @property
    def steps(self) -> int:
        """Steps run so far."""
        return self._steps

    @property
    def running(self) -> int:
        """Sequences admitted and generating."""
        return len(self._running)

    @property
    def waiting(self) -> int:
        """Sequences waiting for admission."""
        return len(self._waiting)

    @property
    def kv_cache_bytes(self) -> int:
        """KV-cache bytes the running sequences hold."""
        return self._reserved_bytes

    def start(self) -> None:
        """Start the worker thread; idempotent."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._work, name=f"maas-generate-{self._name}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """End every sequence (waiting and running get 503) and the worker thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def check_request(self, prompt_tokens: int, max_tokens: int) -> None:
        """Refuse a request that could never run.

        Raises:
            InvalidInput: the prompt and `max_tokens` do not fit the context, `max_tokens` is
                over the cap, or the sequence's cache would not fit the whole budget.
        """
        context, cap = self._config.context, self._limits.max_tokens
        if max_tokens > cap:
            raise InvalidInput(f"max_tokens is {max_tokens}; this server allows at most {cap}")
        if prompt_tokens < 1:
            raise InvalidInput("the prompt is empty: give at least one token of text")
        if prompt_tokens + max_tokens > context:
            raise InvalidInput(
                f"the prompt has {prompt_tokens} tokens and max_tokens is {max_tokens}; "
                f"together they must fit the model's context of {context} tokens"
            )
        needed = cache_bytes(self._config, prompt_tokens + max_tokens)
        if needed > self._limits.kv_cache_bytes:
            raise InvalidInput(
                f"this sequence needs {needed} bytes of KV cache, over the server's budget of "
                f"{self._limits.kv_cache_bytes}; lower max_tokens or shorten the prompt"
            )

    def submit(
        self, prompt_ids: Sequence[int], params: SamplingParams, *, deadline_s: float | None
    ) -> Generation:
        """Queue one sequence (call on the event loop).

        Args:
            prompt_ids: the prompt's tokens.
            params: sampling and stopping.
            deadline_s: `time.monotonic()` after which it is ended with 504 (None: never).

        Raises:
            InvalidInput: as `check_request`.
            Unavailable: the waiting queue is full or the scheduler is stopping.
        """
        self.check_request(len(prompt_ids), params.max_tokens)
        generation = Generation(self, prompt_ids, params, deadline_s)
        with self._cond:
            if self._stopping:
                raise Unavailable(f"model {self._name} is shutting down")
            if len(self._waiting) >= self._limits.max_waiting:
                raise Unavailable(
                    f"model {self._name} has {self._limits.max_waiting} sequences waiting; "
                    f"retry in {self._limits.retry_after_s:g} s"
                )
            self._waiting.append(generation)
            self._cond.notify()
        return generation

    def cancel(self, generation: Generation) -> None:
        """Mark a sequence cancelled; a waiting one leaves at once, a running one next step."""
        with self._cond:
            if generation.is_cancelled or generation.left_at_step is not None:
                return
            generation.is_cancelled = True
            generation.cancelled_at_step = self._steps
            if generation in self._waiting:
                self._waiting.remove(generation)
                self._leave(generation, "cancelled")
            self._cond.notify()

    # -- worker side ---------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            plan = self._next_step()
            if plan is None:
                return
            events = self._run(plan)
            with self._cond:
                self._steps += 1
                finished = [g for g, event in events if event.finish_reason or event.error]
                for generation in finished:
                    self._running.remove(generation)
                    self._leave(generation, generation.finish_reason or "error")
            _deliver(events)

    def _next_step(self) -> _Plan | None:
        """Wait for work, drop what left, admit what fits; None when stopping."""
        with self._cond:
            while True:
                while not self._running and not self._waiting and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    self._end_all()
                    return None
                _deliver(self._drop_departed())
                if self._running or self._waiting:
                    break  # else everyone left: wait again rather than run an empty step
            decoding = list(self._running)
            return _Plan(self._admit(), decoding)

    def _drop_departed(self) -> list[tuple[Generation, TokenEvent]]:
        """Remove cancelled and expired sequences (lock held); the expired get 504."""
        now = time.monotonic()
        ended: list[tuple[Generation, TokenEvent]] = []
        for queue in (self._running, self._waiting):
            for generation in list(queue):
                if generation.is_cancelled:
                    queue.remove(generation)
                    self._leave(generation, "cancelled")
                elif generation.deadline_s is not None and now > generation.deadline_s:
                    queue.remove(generation)
                    self._leave(generation, "error")
                    error = DeadlineExceeded(f"model {self._name} did not finish in time")
                    ended.append((generation, TokenEvent(error=error)))
        return ended

    def _admit(self) -> list[Generation]:
        """Move waiting sequences to running, first come first served, while they fit."""
        admitted: list[Generation] = []
        while self._waiting and len(self._running) < self._limits.max_running:
            generation = self._waiting[0]
            positions = len(generation.prompt_ids) + generation.params.max_tokens
            needed = cache_bytes(self._config, positions)
            if self._reserved_bytes + needed > self._limits.kv_cache_bytes:
                break  # waits for running sequences to free their cache
            self._waiting.popleft()
            generation.cache = KvCache(self._config, positions)
            self._reserved_bytes += needed
            self._running.append(generation)
            admitted.append(generation)
        return admitted

    def _leave(self, generation: Generation, reason: str) -> None:
        """Record that a sequence left and free its cache (lock held)."""
        if generation.cache is not None:
            self._reserved_bytes -= cache_bytes(self._config, generation.cache.capacity)
            generation.cache = None
        generation.finish_reason = generation.finish_reason or reason
        generation.left_at_step = self._steps

    def _end_all(self) -> None:
        """Stopping: every sequence gets 503 (lock held)."""
        ended = []
        for generation in [*self._running, *self._waiting]:
            self._leave(generation, "error")
            error = Unavailable(f"model {self._name} is shutting down")
            ended.append((generation, TokenEvent(error=error)))
        self._running.clear()
        self._waiting.clear()
        _deliver(ended)

    def _run(self, plan: _Plan) -> list[tuple[Generation, TokenEvent]]:
        """Prefill the admitted sequences, then one decode step for the others."""
        events: list[tuple[Generation, TokenEvent]] = []
        if plan.admitted:
            rows = [StepRow(_cache(g), g.prompt_ids) for g in plan.admitted]
            events.extend(self._step(plan.admitted, rows))
        if plan.decoding:
            rows = [StepRow(_cache(g), (g.output_ids[-1],)) for g in plan.decoding]
            events.extend(self._step(plan.decoding, rows))
            if self._observer is not None:
                self._observer.on_step(len(plan.decoding))
        return events

    def _step(
        self, generations: list[Generation], rows: list[StepRow]
    ) -> list[tuple[Generation, TokenEvent]]:
        """Run the model once over `rows` and pick each sequence's next token."""
        try:
            outputs = self._model.step(pack_step(rows, self._config))
            unpack_step(rows, outputs)
        except Exception as err:  # a worker loop is a boundary: fail this step's sequences
            log.exception("generate.step_failed", extra={"model": self._name})
            failure = RunnerError(f"model {self._name} failed on this step")
            failure.__cause__ = err
            return [(g, TokenEvent(error=failure)) for g in generations]
        now = time.monotonic()
        return [
            (g, self._next_token(g, logits, now))
            for g, logits in zip(generations, outputs.last_logits, strict=True)
        ]

    def _next_token(self, generation: Generation, logits: np.ndarray, now: float) -> TokenEvent:
        token = pick_token(logits, generation.params, generation.rng)
        generation.output_ids.append(token)
        is_first = len(generation.output_ids) == 1
        if self._observer is not None:
            since = generation.submitted_s if is_first else generation.last_token_s
            self._observer.on_token(is_first, now - since)
        generation.last_token_s = now
        reason = None
        if token == self._config.eos_token_id:
            reason = FINISH_STOP
        elif len(generation.output_ids) >= generation.params.max_tokens:
            reason = FINISH_LENGTH
        if reason is not None:
            generation.finish_reason = reason
            return TokenEvent((token,) if reason == FINISH_LENGTH else (), reason)
        return TokenEvent((token,))


def _cache(generation: Generation) -> KvCache:
    cache = generation.cache
    if cache is None:
        raise RunnerError("a running sequence has no KV cache")  # a scheduler bug
    return cache


def _deliver(events: list[tuple[Generation, TokenEvent]]) -> None:
    """Hand events back to their event loops: one wake-up per loop per step."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Generation, TokenEvent]]] = {}
    for generation, event in events:
        if not generation.is_cancelled:
            by_loop.setdefault(generation.loop, []).append((generation, event))
    for loop, items in by_loop.items():
        try:
            loop.call_soon_threadsafe(_put_all, items)
        except RuntimeError:
            log.debug("generate.loop_closed")  # the caller's loop ended; nobody waits


def _put_all(items: list[tuple[Generation, TokenEvent]]) -> None:
    for generation, event in items:
        generation.put(event)
