"""The v2 generate extension: `POST /v2/models/{m}[/versions/{v}]/generate` and
`/generate_stream`.

The body is `{"text_input": "...", "parameters": {"max_tokens", "temperature", "top_p", "stop",
"seed"}}`; the answer is `{"model_name", "model_version", "text_output", "finish_reason",
"usage"}`, or, streamed, one such event per piece of text (server-sent events). Errors have the
v2 shape (`{"error": "..."}`); one in the middle of a stream is its last event.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from maas.errors import MaasError
from maas.generate.sampling import SamplingParams
from maas.generate.text import TextStream
from maas.serving.dataplane import DataPlane
from maas.serving.generative import answering, find_generator
from maas.serving.repository import LoadedVersion
from maas.serving.rest.handlers import HttpRequest, Reply, json_reply, model_name
from maas.serving.rest.openai_bodies import COMPLETION_DEFAULT_MAX_TOKENS, parse_body
from maas.serving.rest.streaming import event_stream, sse_event

log = logging.getLogger(__name__)

PROTOCOL = "rest"


class GenerateParameters(BaseModel):
    model_config = ConfigDict(extra="ignore")
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float = Field(default=1.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    stop: str | list[str] | None = None
    seed: int | None = Field(default=None, ge=0)


class GenerateBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    text_input: str
    parameters: GenerateParameters = Field(default_factory=GenerateParameters)


class GenerateHandlers:
    """The generate extension over one data plane."""

    def __init__(self, data_plane: DataPlane) -> None:
        self._dp = data_plane

    async def generate(self, request: HttpRequest) -> Reply:
        loaded, stream = self._start(request)
        with answering(loaded, PROTOCOL):
            text, reason = await stream.text()
        return json_reply(_doc(loaded, stream, text, reason))

    async def generate_stream(self, request: HttpRequest) -> Reply:
        loaded, stream = self._start(request)
        return event_stream(_events(loaded, stream))

    def _start(self, request: HttpRequest) -> tuple[LoadedVersion, TextStream]:
        loaded, generator = find_generator(
            self._dp.repository, model_name(request), request.version
        )
        body = parse_body(GenerateBody, request.body)
        ids = generator.encode_prompt(body.text_input)
        given = body.parameters
        room = generator.config.context - len(ids)
        max_tokens = given.max_tokens or max(1, min(COMPLETION_DEFAULT_MAX_TOKENS, room))
        stop = (given.stop,) if isinstance(given.stop, str) else tuple(given.stop or ())
        params = SamplingParams(max_tokens, given.temperature, given.top_p, stop, given.seed)
        try:
            stream = generator.start(ids, params, deadline_s=request.context.deadline_s)
        except MaasError as err:
            loaded.metrics.on_rejected(PROTOCOL, err.code.value)
            raise
        return loaded, stream


def _doc(
    loaded: LoadedVersion, stream: TextStream, text: str, reason: str | None
) -> dict[str, Any]:
    usage = stream.usage
    return {
        "model_name": loaded.name,
        "model_version": loaded.version,
        "text_output": text,
        "finish_reason": reason,
        "usage": {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens,
        },
    }


async def _events(loaded: LoadedVersion, stream: TextStream) -> AsyncIterator[bytes]:
    """One event per piece of text (the last with the finish reason and usage)."""
    try:
        with answering(loaded, PROTOCOL):
            async with contextlib.aclosing(stream.deltas()) as deltas:
                async for delta in deltas:
                    if delta.text or delta.finish_reason:
                        yield sse_event(_doc(loaded, stream, delta.text, delta.finish_reason))
    except MaasError as err:
        log.info("generate.stream_failed", extra={"error": str(err)})
        yield sse_event({"error": str(err)})
    finally:
        stream.close()
