"""The OpenAI-compatible API: `POST /v1/completions`, `POST /v1/chat/completions` and
`GET /v1/models`, over the generative versions' schedulers.

A request names its model in the body (`name`, or `name@version` / `name@alias`), so the
route's admission only authenticates; the handler checks the caller's `infer:MODEL` scope.
`stream: true` answers with server-sent events ending in `data: [DONE]`. Every error, including
one in the middle of a stream, has OpenAI's shape (`openai_bodies.error_doc`).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from maas.errors import ErrorCode, MaasError
from maas.generate.sampling import SamplingParams
from maas.generate.text import TextGenerator, TextStream
from maas.security.acl import Action, allows, authorize
from maas.serving.dataplane import DataPlane
from maas.serving.generative import answering, find_generator, generative_versions
from maas.serving.repository import LoadedVersion, parse_model_ref
from maas.serving.rest.handlers import RETRY_AFTER_S, HttpRequest, Reply, json_reply
from maas.serving.rest.openai_bodies import (
    COMPLETION_DEFAULT_MAX_TOKENS,
    ChatBody,
    CompletionBody,
    InvalidParam,
    error_doc,
    error_reply,
    parse_body,
)
from maas.serving.rest.streaming import DONE_EVENT, event_stream, sse_event

log = logging.getLogger(__name__)

PROTOCOL = "openai"  # the metrics label of these requests
OWNER = "maas"


@dataclass(frozen=True, slots=True)
class _Job:
    """One accepted generation request: what answers it and how to label the answer."""

    loaded: LoadedVersion
    stream: TextStream
    model: str
    id: str
    created: int
    is_chat: bool
    include_usage: bool

    def chunk(self, choice: dict[str, Any]) -> dict[str, Any]:
        kind = "chat.completion.chunk" if self.is_chat else "text_completion"
        return {**self._head(kind), "choices": [choice]}

    def whole(self, choice: dict[str, Any]) -> dict[str, Any]:
        kind = "chat.completion" if self.is_chat else "text_completion"
        return {**self._head(kind), "choices": [choice], "usage": self.usage()}

    def usage(self) -> dict[str, int]:
        usage = self.stream.usage
        return {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens,
        }

    def _head(self, kind: str) -> dict[str, Any]:
        fingerprint = f"{self.loaded.name}:{self.loaded.version}"
        return {
            "id": self.id,
            "object": kind,
            "created": self.created,
            "model": self.model,
            "system_fingerprint": fingerprint,
        }


Handler = Callable[[HttpRequest], Awaitable[Reply]]


class OpenAiHandlers:
    """The OpenAI endpoints over one data plane."""

    def __init__(self, data_plane: DataPlane) -> None:
        self._dp = data_plane

    async def completions(self, request: HttpRequest) -> Reply:
        return await _openai_errors(self._completions, request)

    async def chat_completions(self, request: HttpRequest) -> Reply:
        return await _openai_errors(self._chat, request)

    async def models(self, request: HttpRequest) -> Reply:
        principal = request.principal
        seen: dict[str, LoadedVersion] = {}
        for loaded in generative_versions(self._dp.repository):
            if principal is None or allows(principal.scopes, Action.READ, loaded.name):
                seen.setdefault(loaded.name, loaded)
        data = [
            {
                "id": name,
                "object": "model",
                "created": int(loaded.model.created_at.timestamp()),
                "owned_by": OWNER,
            }
            for name, loaded in seen.items()
        ]
        return json_reply({"object": "list", "data": data})

    async def _completions(self, request: HttpRequest) -> Reply:
        body = parse_body(CompletionBody, request.body)
        loaded, generator = self._generator(body.model, request)
        prompt = body.prompt_text_or_ids()
        ids = generator.encode_prompt(prompt) if isinstance(prompt, str) else prompt
        _check_ids(ids, generator)
        room = generator.config.context - len(ids)
        max_tokens = body.max_tokens or max(1, min(COMPLETION_DEFAULT_MAX_TOKENS, room))
        job = self._start(loaded, generator, ids, body.sampling(max_tokens), body, request)
        if body.stream:
            return event_stream(_completion_events(job))
        with answering(loaded, PROTOCOL):
            text, reason = await job.stream.text()
        choice = {"text": text, "index": 0, "logprobs": None, "finish_reason": reason}
        return json_reply(job.whole(choice))

    async def _chat(self, request: HttpRequest) -> Reply:
        body = parse_body(ChatBody, request.body)
        loaded, generator = self._generator(body.model, request)
        messages = [message.message() for message in body.messages]
        ids = generator.encode_prompt(generator.tokenizer.render_chat(messages))
        room = generator.config.context - len(ids)
        cap = generator.scheduler.limits.max_tokens
        max_tokens = body.requested_max_tokens or max(1, min(cap, room))
        job = self._start(loaded, generator, ids, body.sampling(max_tokens), body, request)
        if body.stream:
            return event_stream(_chat_events(job))
        with answering(loaded, PROTOCOL):
            text, reason = await job.stream.text()
        message = {"role": "assistant", "content": text}
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": reason}
        return json_reply(job.whole(choice))

    def _generator(self, model: str, request: HttpRequest) -> tuple[LoadedVersion, TextGenerator]:
        name, ref = parse_model_ref(model)
        principal = request.principal
        if principal is not None:
            authorize(principal, Action.INFER, name)
        return find_generator(self._dp.repository, name, ref)

    def _start(
        self,
        loaded: LoadedVersion,
        generator: TextGenerator,
        ids: list[int],
        params: SamplingParams,
        body: CompletionBody | ChatBody,
        request: HttpRequest,
    ) -> _Job:
        try:
            stream = generator.start(ids, params, deadline_s=request.context.deadline_s)
        except MaasError as err:
            loaded.metrics.on_rejected(PROTOCOL, err.code.value)
            raise
        is_chat = isinstance(body, ChatBody)
        job_id = f"{'chatcmpl' if is_chat else 'cmpl'}-{request.context.id}"
        created = int(time.time())
        return _Job(loaded, stream, body.model, job_id, created, is_chat, body.include_usage)


def _check_ids(ids: list[int], generator: TextGenerator) -> None:
    vocab = generator.config.vocab_size
    if any(not 0 <= token < vocab for token in ids):
        raise InvalidParam(f"prompt token ids must be between 0 and {vocab - 1}", "prompt")


async def _openai_errors(handler: Handler, request: HttpRequest) -> Reply:
    """Answer a `MaasError` in OpenAI's shape (with Retry-After when it says to retry)."""
    try:
        return await handler(request)
    except MaasError as err:
        if err.code is ErrorCode.INTERNAL:
            log.error("request.failed", exc_info=err)
        retry = err.code in (ErrorCode.UNAVAILABLE, ErrorCode.RESOURCE_EXHAUSTED)
        return error_reply(err, (("retry-after", RETRY_AFTER_S),) if retry else ())


@dataclass(frozen=True, slots=True)
class _Piece:
    """A piece of a streamed answer: text, the finish reason, or the error that ended it."""

    text: str = ""
    finish_reason: str | None = None
    error: dict[str, Any] | None = None


async def _completion_events(job: _Job) -> AsyncIterator[bytes]:
    """Completion chunks as the text comes; usage last when asked; then `[DONE]`."""
    async with contextlib.aclosing(_pieces(job)) as pieces:
        async for piece in pieces:
            if piece.error is not None:
                yield sse_event(piece.error)
                continue
            choice = {
                "text": piece.text,
                "index": 0,
                "logprobs": None,
                "finish_reason": piece.finish_reason,
            }
            yield sse_event(job.chunk(choice))
    if job.include_usage and job.stream.finish_reason is not None:
        yield sse_event({**job.chunk({}), "choices": [], "usage": job.usage()})
    yield DONE_EVENT


async def _chat_events(job: _Job) -> AsyncIterator[bytes]:
    """Chat chunks: the role first, then content deltas, then the finish reason."""
    role = {"role": "assistant", "content": ""}
    yield sse_event(job.chunk({"index": 0, "delta": role, "logprobs": None, "finish_reason": None}))
    async with contextlib.aclosing(_pieces(job)) as pieces:
        async for piece in pieces:
            if piece.error is not None:
                yield sse_event(piece.error)
                continue
            delta = {"content": piece.text} if piece.text else {}
            choice = {
                "index": 0,
                "delta": delta,
                "logprobs": None,
                "finish_reason": piece.finish_reason,
            }
            yield sse_event(job.chunk(choice))
    if job.include_usage and job.stream.finish_reason is not None:
        yield sse_event({**job.chunk({}), "choices": [], "usage": job.usage()})
    yield DONE_EVENT


async def _pieces(job: _Job) -> AsyncGenerator[_Piece, None]:
    """The stream's text as pieces; a failure is the last piece. However the iteration ends
    (a client that left closes it), the sequence stops."""
    stream = job.stream
    try:
        with answering(job.loaded, PROTOCOL):
            async for delta in stream.deltas():
                if delta.text or delta.finish_reason:
                    yield _Piece(delta.text, delta.finish_reason)
    except MaasError as err:
        log.info("generate.stream_failed", extra={"error": str(err)})
        yield _Piece(error=error_doc(err))
    finally:
        stream.close()
