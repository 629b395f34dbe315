"""`TextGenerator`: prompts in, text deltas out, over one scheduler and tokenizer.

It tokenizes the prompt, submits the sequence, turns its tokens into text as they come and ends
the sequence early at a stop string (the text stops before it). What a stream produced (usage
counts, finish reason) is read from the stream once it ended.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass

from maas.errors import InvalidInput
from maas.generate.model import LmConfig
from maas.generate.sampling import SamplingParams
from maas.generate.scheduler import FINISH_LENGTH, FINISH_STOP, Scheduler
from maas.generate.sequence import Generation
from maas.generate.tokenizer import Detokenizer, TextTokenizer


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of one request, as OpenAI reports them."""

    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class TextDelta:
    """New text of a stream; the last one carries the finish reason (`stop` or `length`)."""

    text: str
    finish_reason: str | None = None


class TextStream:
    """The text of one sequence as it is generated (iterate once).

    Leaving the iteration early, or `close()`, cancels the sequence.
    """

    def __init__(self, generation: Generation, tokenizer: TextTokenizer) -> None:
        self._generation = generation
        self._detokenizer = Detokenizer(tokenizer)
        self._stops = generation.params.stop
        self._held = ""  # text that may be the start of a stop string
        self.finish_reason: str | None = None

    @property
    def usage(self) -> Usage:
        """Tokens in the prompt and generated so far (all of them once the stream ended)."""
        generation = self._generation
        return Usage(len(generation.prompt_ids), len(generation.output_ids))

    def close(self) -> None:
        """Stop generating (the client left, or the text is complete)."""
        self._generation.cancel()

    async def deltas(self) -> AsyncGenerator[TextDelta, None]:
        """Text as it becomes safe to show (all but a tail that could start a stop string);
        the last delta carries the finish reason.

        Raises:
            MaasError: the model failed, the deadline passed or the server is stopping.
        """
        try:
            async for event in self._generation.events():
                self._held += self._detokenizer.push(event.token_ids)
                if event.finish_reason is not None:
                    self._held += self._detokenizer.flush()
                stop_at = self._find_stop()
                if stop_at is not None:
                    self.finish_reason = FINISH_STOP
                    yield TextDelta(self._held[:stop_at], FINISH_STOP)
                    return
                if event.finish_reason is not None:
                    self.finish_reason = event.finish_reason
                    yield TextDelta(self._held, event.finish_reason)
                    return
                safe = len(self._held) - _stop_prefix_length(self._held, self._stops)
                if safe > 0:
                    yield TextDelta(self._held[:safe])
                    self._held = self._held[safe:]
        finally:
            self.close()

    async def text(self) -> tuple[str, str]:
        """The whole text and its finish reason, once generation ended.

        Raises:
            MaasError: as `deltas`.
        """
        parts: list[str] = []
        reason = FINISH_LENGTH
        async for delta in self.deltas():
            parts.append(delta.text)
            reason = delta.finish_reason or reason
        return "".join(parts), reason

    def _find_stop(self) -> int | None:
        """Where the first stop string starts in the held text (None: nowhere)."""
        found = [i for i in (self._held.find(stop) for stop in self._stops) if i >= 0]
        return min(found) if found else None


def _stop_prefix_length(text: str, stops: Sequence[str]) -> int:
    """Length of the longest end of `text` that a stop string starts with."""
    longest = 0
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), longest, -1):
            if text.endswith(stop[:size]):
                longest = size
                break
    return longest


MAX_PROMPT_CHARS_PER_TOKEN = 16  # far above any tokenizer's average (about 4): a longer prompt
# cannot fit the context, and is refused before the tokenizer spends time on it


class TextGenerator:
    """Text generation for one loaded causal LM.

    Args:
        tokenizer: the model's tokenizer.
        scheduler: its started scheduler.
        config: its generation config.
        on_stop: called once the scheduler stopped (to drop its metrics).
    """

    def __init__(
        self,
        tokenizer: TextTokenizer,
        scheduler: Scheduler,
        config: LmConfig,
        *,
        on_stop: Callable[[], None] | None = None,
    ) -> None:
        self.tokenizer = tokenizer
        self.scheduler = scheduler
        self.config = config
        self._on_stop = on_stop

    def encode_prompt(self, text: str) -> list[int]:
        """The prompt's tokens.

        Raises:
            InvalidInput: the text is far too long for the context (checked before tokenizing).
        """
        context = self.config.context
        limit = context * MAX_PROMPT_CHARS_PER_TOKEN
        if len(text) > limit:
            raise InvalidInput(
                f"the prompt has {len(text)} characters; the model's context of {context} "
                f"tokens allows at most {limit}"
            )
        return self.tokenizer.encode(text)

    def start(
        self, prompt_ids: Sequence[int], params: SamplingParams, *, deadline_s: float | None
    ) -> TextStream:
        """Submit `prompt_ids`; the stream yields its text.

        Raises:
            InvalidInput: the prompt and `max_tokens` do not fit (the message gives the limits).
            Unavailable: too many sequences are waiting.
        """
        generation = self.scheduler.submit(prompt_ids, params, deadline_s=deadline_s)
        return TextStream(generation, self.tokenizer)

    def stop(self) -> None:
        """Stop the scheduler (running sequences end with 503)."""
        self.scheduler.stop()
        if self._on_stop is not None:
            self._on_stop()
            self._on_stop = None
