"""`Generation`: one submitted sequence as its client and the scheduler both see it, and the
`TokenEvent`s that carry its tokens from the scheduler's thread to the event loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from maas.errors import MaasError
from maas.generate.kvcache import KvCache
from maas.generate.sampling import SamplingParams


@dataclass(frozen=True, slots=True)
class TokenEvent:
    """What one step gave one sequence: new tokens, or how it ended."""

    token_ids: tuple[int, ...] = ()
    finish_reason: str | None = None
    error: MaasError | None = None


class Canceller(Protocol):
    """What a generation asks to stop it (the scheduler)."""

    def cancel(self, generation: Generation) -> None: ...


class Generation:
    """One submitted sequence: its tokens as they come, and what became of it.

    Attributes:
        prompt_ids: the prompt's tokens.
        output_ids: the tokens generated so far (read on the event loop after events arrive).
        finish_reason: `stop`, `length`, `cancelled` or `error` once it left.
        cancelled_at_step: the scheduler's step count when its client left (None: it did not).
        left_at_step: the step count when it left the scheduler.
    """

    __slots__ = (
        "_events",
        "_scheduler",
        "cache",
        "cancelled_at_step",
        "deadline_s",
        "finish_reason",
        "is_cancelled",
        "last_token_s",
        "left_at_step",
        "loop",
        "output_ids",
        "params",
        "prompt_ids",
        "rng",
        "submitted_s",
    )

    def __init__(
        self,
        scheduler: Canceller,
        prompt_ids: Sequence[int],
        params: SamplingParams,
        deadline_s: float | None,
    ) -> None:
        self._scheduler = scheduler
        self._events: asyncio.Queue[TokenEvent] = asyncio.Queue()
        self.loop = asyncio.get_running_loop()
        self.prompt_ids = tuple(prompt_ids)
        self.params = params
        self.deadline_s = deadline_s
        self.rng = params.generator()
        self.output_ids: list[int] = []
        self.cache: KvCache | None = None
        self.finish_reason: str | None = None
        self.is_cancelled = False
        self.cancelled_at_step: int | None = None
        self.left_at_step: int | None = None
        self.submitted_s = self.last_token_s = time.monotonic()

    async def events(self) -> AsyncIterator[TokenEvent]:
        """New tokens step by step, ending with the event that carries the finish reason.

        Leaving early (the consumer stops or is cancelled) cancels the sequence.

        Raises:
            MaasError: the model failed, the deadline passed or the server is stopping.
        """
        try:
            while True:
                event = await self._events.get()
                if event.error is not None:
                    raise event.error
                yield event
                if event.finish_reason is not None:
                    return
        finally:
            if self.finish_reason is None:
                self.cancel()

    def cancel(self) -> None:
        """Stop generating (the client left); the sequence leaves within one step."""
        self._scheduler.cancel(self)

    def put(self, event: TokenEvent) -> None:
        """Hand an event to the consumer (on the event loop)."""
        self._events.put_nowait(event)
