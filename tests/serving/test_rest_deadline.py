"""The REST request timeout of `GuardedApp` around an app that does not report to the deadline:
504 when the body arrived but no answer started in time, the whole answer once it started."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from maas.serving.protection import Protection
from maas.serving.rest.auth import GuardedApp
from maas.serving.rest.http1 import Http1Server

TIMEOUT_S = 0.3
LATE_S = 1.0  # well past the timeout


async def slow_app(scope: Any, receive: Any, send: Any) -> None:
    """Reads the body, then answers `/late-start` late, or `/late-body` early with a late body."""
    message = await receive()
    while message.get("more_body", False):
        message = await receive()
    if scope["path"] == "/late-start":
        await asyncio.sleep(LATE_S)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    if scope["path"] == "/late-body":
        await asyncio.sleep(LATE_S)
    await send({"type": "http.response.body", "body": b"answered"})


@contextlib.asynccontextmanager
async def serving(app: Any) -> AsyncIterator[str]:
    server = Http1Server(app, "127.0.0.1", 0)
    await server.start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        await server.stop(1.0)


def guarded() -> GuardedApp:
    routes = [("POST", "/late-start"), ("POST", "/late-body")]
    return GuardedApp(slow_app, Protection(), routes, lambda: [], TIMEOUT_S)


@pytest.mark.slow
async def test_an_answer_that_does_not_start_in_time_gets_504() -> None:
    async with serving(guarded()) as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
        reply = await client.post("/late-start", content=b"x" * 100)
    assert reply.status_code == 504
    assert "not answered within 0.3 s" in orjson.loads(reply.content)["error"]


@pytest.mark.slow
async def test_an_answer_that_started_in_time_is_sent_whole() -> None:
    async with serving(guarded()) as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
        reply = await client.post("/late-body", content=b"x" * 100)
    assert reply.status_code == 200
    assert reply.content == b"answered"
