"""Server-sent events: the framing of streamed generation responses."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from maas.serving.rest.handlers import Reply

EVENT_STREAM_TYPE = "text/event-stream"
DONE_EVENT = b"data: [DONE]\n\n"  # how OpenAI ends a stream
STREAM_HEADERS = (("cache-control", "no-cache"),)


def sse_event(doc: Any) -> bytes:
    """One `data:` event holding `doc` as JSON."""
    return b"data: " + orjson.dumps(doc) + b"\n\n"


def event_stream(events: AsyncIterator[bytes]) -> Reply:
    """A 200 reply that streams `events` (already framed) as they come."""
    return Reply(200, b"", EVENT_STREAM_TYPE, STREAM_HEADERS, stream=events)
