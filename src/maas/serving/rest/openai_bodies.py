"""The OpenAI API's request bodies (the fields maas reads) and its error shape.

Bodies are validated with pydantic; a field outside its range is a 400 naming the field in
`param`. Fields maas does not implement are refused when set to anything but their default
(`n`, `echo`, `logprobs`, `best_of`), so a client never silently gets less than it asked for.
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from maas.errors import ErrorCode, InvalidInput, MaasError
from maas.generate.sampling import MAX_SEED, SamplingParams
from maas.generate.tokenizer import CHAT_ROLES, ChatMessage
from maas.serving.rest.handlers import HTTP_STATUS, Reply, json_body

COMPLETION_DEFAULT_MAX_TOKENS = 16  # OpenAI's default for /v1/completions
MAX_PROMPT_TOKEN_IDS = 1_000_000  # a prompt given as token ids: far past any context

# ErrorCode -> (OpenAI error type, OpenAI error code)
OPENAI_ERRORS: dict[ErrorCode, tuple[str, str | None]] = {
    ErrorCode.INVALID_ARGUMENT: ("invalid_request_error", None),
    ErrorCode.UNAUTHENTICATED: ("authentication_error", "invalid_api_key"),
    ErrorCode.PERMISSION_DENIED: ("permission_error", None),
    ErrorCode.NOT_FOUND: ("invalid_request_error", "model_not_found"),
    ErrorCode.PAYLOAD_TOO_LARGE: ("invalid_request_error", "request_too_large"),
    ErrorCode.RESOURCE_EXHAUSTED: ("rate_limit_error", "rate_limit_exceeded"),
    ErrorCode.UNAVAILABLE: ("server_error", "overloaded"),
    ErrorCode.DEADLINE_EXCEEDED: ("timeout_error", "timeout"),
    ErrorCode.INTERNAL: ("server_error", None),
}


class InvalidParam(InvalidInput):
    """A request field with a value maas cannot use; `param` names the field."""

    def __init__(self, message: str, param: str | None) -> None:
        super().__init__(message)
        self.param = param


def error_doc(err: MaasError) -> dict[str, Any]:
    """`{"error": {"message", "type", "param", "code"}}` for `err`."""
    kind, code = OPENAI_ERRORS[err.code]
    param = err.param if isinstance(err, InvalidParam) else None
    return {"error": {"message": str(err), "type": kind, "param": param, "code": code}}


def error_reply(err: MaasError, headers: tuple[tuple[str, str], ...] = ()) -> Reply:
    """The OpenAI-shaped answer to a failed request."""
    return Reply(HTTP_STATUS[err.code], orjson.dumps(error_doc(err)), headers=headers)


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: bool = False


class _Generating(BaseModel):
    """What completions and chat completions share."""

    model_config = ConfigDict(extra="ignore")
    model: str = Field(min_length=1, max_length=256)
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    stop: str | list[str] | None = None
    seed: int | None = Field(default=None, ge=0, le=MAX_SEED)
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = Field(default=1, ge=1, le=1)

    @property
    def include_usage(self) -> bool:
        return self.stream_options is not None and self.stream_options.include_usage

    def sampling(self, max_tokens: int) -> SamplingParams:
        """The sampling parameters, with `max_tokens` already decided."""
        stop = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop or ())
        temperature = 1.0 if self.temperature is None else self.temperature
        top_p = 1.0 if self.top_p is None else self.top_p
        try:
            return SamplingParams(max_tokens, temperature, top_p, stop, self.seed)
        except InvalidInput as err:
            raise InvalidParam(str(err), _param_of(str(err))) from None


class CompletionBody(_Generating):
    """`POST /v1/completions`."""

    prompt: str | list[str] | list[int]
    echo: Literal[False] = False
    logprobs: None = None
    best_of: int | None = Field(default=None, ge=1, le=1)

    def prompt_text_or_ids(self) -> str | list[int]:
        """The one prompt, as text or token ids."""
        prompt = self.prompt
        if isinstance(prompt, str):
            return prompt
        if prompt and all(isinstance(item, str) for item in prompt):
            if len(prompt) != 1:
                raise InvalidParam("give one prompt per request", "prompt")
            return str(prompt[0])
        if len(prompt) > MAX_PROMPT_TOKEN_IDS:
            raise InvalidParam("the prompt has too many token ids", "prompt")
        return [int(item) for item in prompt]


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["text"]
    text: str


class ChatMessageBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: str
    content: str | list[ContentPart] | None = None

    def message(self) -> ChatMessage:
        if self.role not in CHAT_ROLES:
            roles = ", ".join(sorted(CHAT_ROLES))
            raise InvalidParam(f"message role {self.role!r} is not one of {roles}", "messages")
        content = self.content
        if isinstance(content, list):
            content = "".join(part.text for part in content)
        return ChatMessage(self.role, content or "")


class ChatBody(_Generating):
    """`POST /v1/chat/completions`."""

    messages: list[ChatMessageBody] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    logprobs: Literal[False] | None = None

    @property
    def requested_max_tokens(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


BodyT = TypeVar("BodyT", bound=BaseModel)


def parse_body(model: type[BodyT], body: bytes) -> BodyT:
    """The body as `model`.

    Raises:
        InvalidParam: not JSON, not an object, or a field is missing or out of range.
    """
    doc = json_body(body)
    if not isinstance(doc, dict):
        raise InvalidParam("the body must be a JSON object", None)
    try:
        return model.model_validate(doc)
    except ValidationError as err:
        first = err.errors()[0]
        param = ".".join(str(part) for part in first["loc"]) or None
        raise InvalidParam(f"{param}: {first['msg']}", param) from None


def _param_of(message: str) -> str | None:
    """The field a sampling error is about (its message starts with the field's name)."""
    for name in ("max_tokens", "temperature", "top_p", "seed"):
        if message.startswith(name):
            return name
    return "stop" if "stop" in message else None
