"""`Http1Server` on the wire: keep-alive, pipelining, request and response bodies in chunks,
`Expect: 100-continue`, early answers, the errors the server gives on its own (400, 408, 431,
500, 503), graceful stop and TLS. Tiny ASGI apps answer; raw sockets check the exact bytes and
httpx the ordinary client's view."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import orjson
import pytest
from certificates import make_certificates

from maas.serving.rest.http1 import Http1Server

LIMIT_S = 10.0  # upper bound for any single wait, so that a broken server fails instead of hanging
HELLO = b"hello world"
STREAM_PARTS = [b"first part, ", b"second part, ", b"last part"]


# -- the apps ------------------------------------------------------------------------------


async def read_body(receive: Any) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionError("the client went away")
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def answer(send: Any, status: int, body: bytes, headers: list[Any] | None = None) -> None:
    head = [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": head + (headers or [])})
    await send({"type": "http.response.body", "body": body})


@dataclass
class App:
    """Routes on the path:

    /hello        answers "hello world" (with a content length), without reading the body
    /echo         answers the request body it read, with x-scheme and x-receives headers
    /early-413    answers 413 without reading the body
    /stream       answers STREAM_PARTS as separate messages, without a content length
    /slow?s=0.3   reads the body, sleeps, answers "slept"; sets `entered` when it starts
    /hold         answers once `release` is set; sets `entered` when it starts
    /boom         raises before answering
    /silent       returns without answering
    """

    entered: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    cancelled: list[str] = field(default_factory=list)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        route = {
            "/hello": self.hello,
            "/echo": self.echo,
            "/early-413": self.early_413,
            "/stream": self.stream,
            "/slow": self.slow,
            "/hold": self.hold,
            "/boom": self.boom,
            "/silent": self.silent,
        }.get(scope["path"], self.not_found)
        await route(scope, receive, send)

    async def hello(self, scope: Any, receive: Any, send: Any) -> None:
        await answer(send, 200, HELLO)

    async def echo(self, scope: Any, receive: Any, send: Any) -> None:
        receives = 0
        chunks = []
        while True:
            message = await receive()
            receives += 1
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        extra = [(b"x-scheme", scope["scheme"].encode()), (b"x-receives", b"%d" % receives)]
        await answer(send, 200, b"".join(chunks), extra)

    async def early_413(self, scope: Any, receive: Any, send: Any) -> None:
        await answer(send, 413, b"too large")

    async def stream(self, scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for part in STREAM_PARTS:
            await send({"type": "http.response.body", "body": part, "more_body": True})
            await asyncio.sleep(0.01)
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def slow(self, scope: Any, receive: Any, send: Any) -> None:
        await read_body(receive)
        self.entered.set()
        seconds = float(parse_qs(scope["query_string"].decode())["s"][0])
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            self.cancelled.append(scope["path"])
            raise
        await answer(send, 200, b"slept")

    async def hold(self, scope: Any, receive: Any, send: Any) -> None:
        self.entered.set()
        await self.release.wait()
        await answer(send, 200, b"released")

    async def boom(self, scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("the app failed")

    async def silent(self, scope: Any, receive: Any, send: Any) -> None:
        return

    async def not_found(self, scope: Any, receive: Any, send: Any) -> None:
        await answer(send, 404, b"no such path")


# -- a raw client --------------------------------------------------------------------------


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    head: bytes


def request(
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    version: str = "HTTP/1.1",
) -> bytes:
    lines = [f"{method} {path} {version}", "Host: 127.0.0.1"]
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


async def read_response(reader: asyncio.StreamReader, *, is_head: bool = False) -> Response:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), LIMIT_S)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    if is_head or status in (100, 204, 304):
        body = b""
    elif "content-length" in headers:
        body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), LIMIT_S)
    elif headers.get("transfer-encoding") == "chunked":
        body = await asyncio.wait_for(read_chunked(reader), LIMIT_S)
    else:
        body = await asyncio.wait_for(reader.read(), LIMIT_S)
    return Response(status, headers, body, head)


async def read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).strip(), 16)
        if size == 0:
            assert await reader.readexactly(2) == b"\r\n"
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        assert await reader.readexactly(2) == b"\r\n"


async def read_to_end(reader: asyncio.StreamReader) -> bytes:
    """What arrives until the server closes the connection."""
    return await asyncio.wait_for(reader.read(), LIMIT_S)


@contextlib.asynccontextmanager
async def connect(
    server: Http1Server,
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


@contextlib.asynccontextmanager
async def serving(app: Any, **options: Any) -> AsyncIterator[Http1Server]:
    server = Http1Server(app, "127.0.0.1", 0, **options)
    await server.start()
    try:
        yield server
    finally:
        await asyncio.wait_for(server.stop(1.0), LIMIT_S)


def url(server: Http1Server, scheme: str = "http") -> str:
    return f"{scheme}://127.0.0.1:{server.port}"


async def assert_serves(server: Http1Server) -> None:
    """A fresh connection gets an ordinary answer."""
    async with connect(server) as (reader, writer):
        writer.write(request("GET", "/hello"))
        reply = await read_response(reader)
    assert (reply.status, reply.body) == (200, HELLO)


# -- keep-alive and pipelining -------------------------------------------------------------


async def test_keep_alive_answers_two_requests_on_one_connection() -> None:
    async with serving(App()) as server, connect(server) as (reader, writer):
        writer.write(request("POST", "/echo", b"one"))
        first = await read_response(reader)
        writer.write(request("POST", "/echo", b"two"))
        second = await read_response(reader)
        assert len(server.connections) == 1
    assert (first.status, first.body) == (200, b"one")
    assert (second.status, second.body) == (200, b"two")
    assert "connection" not in first.headers


async def test_connection_close_closes_after_the_answer() -> None:
    async with serving(App()) as server, connect(server) as (reader, writer):
        writer.write(request("GET", "/hello", headers={"Connection": "close"}))
        reply = await read_response(reader)
        rest = await read_to_end(reader)
    assert (reply.status, reply.body) == (200, HELLO)
    assert reply.headers["connection"] == "close"
    assert rest == b""


async def test_http_1_0_without_keep_alive_closes_after_the_answer() -> None:
    async with serving(App()) as server, connect(server) as (reader, writer):
        writer.write(request("GET", "/hello", version="HTTP/1.0"))
        reply = await read_response(reader)
        rest = await read_to_end(reader)
    assert (reply.status, reply.body) == (200, HELLO)
    assert rest == b""


async def test_pipelined_requests_are_answered_in_order() -> None:
    pipelined = (
        request("POST", "/slow?s=0.2", b"")
        + request("POST", "/echo", b"second")
        + request("GET", "/hello")
    )
    async with serving(App()) as server, connect(server) as (reader, writer):
        writer.write(pipelined)
        replies = [await read_response(reader) for _ in range(3)]
    assert [(reply.status, reply.body) for reply in replies] == [
        (200, b"slept"),
        (200, b"second"),
        (200, HELLO),
    ]


# -- request bodies ------------------------------------------------------------------------


async def test_a_chunked_request_body_reaches_the_app_whole() -> None:
    parts = [b"alpha-", b"beta-" * 100, b"gamma"]
    async with serving(App()) as server, connect(server) as (reader, writer):
        writer.write(
            b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        for part in parts:
            writer.write(b"%x\r\n%s\r\n" % (len(part), part))
            await writer.drain()
            await asyncio.sleep(0.05)  # separate segments, so the app sees them arrive apart
        writer.write(b"0\r\n\r\n")
        reply = await read_response(reader)
    assert reply.status == 200
    assert reply.body == b"".join(parts)
    assert int(reply.headers["x-receives"]) > 1  # streamed to the app as it arrived


async def test_a_large_request_body_reaches_the_app_whole() -> None:
    body = bytes(range(256)) * 8192  # 2 MiB: over the read-ahead limit, so reading pauses
    async with (
        serving(App()) as server,
        httpx.AsyncClient(base_url=url(server), timeout=LIMIT_S) as client,
    ):
        reply = await client.post("/echo", content=body)
    assert reply.status_code == 200
    assert reply.content == body


async def test_expect_100_continue_is_answered_before_the_body_is_sent() -> None:
    async with serving(App()) as server, connect(server) as (reader, writer):
        writer.write(
            request("POST", "/echo", headers={"Content-Length": "5", "Expect": "100-continue"})
        )
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), LIMIT_S)
        writer.write(b"hello")
        reply = await read_response(reader)
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert (reply.status, reply.body) == (200, b"hello")


async def test_an_early_answer_to_expect_100_continue_skips_the_100_and_closes() -> None:
    headers = {"Content-Length": "200000", "Expect": "100-continue"}
    async with serving(App()) as server, connect(server) as (reader, writer):
        writer.write(request("POST", "/early-413", headers=headers))
        reply = await read_response(reader)
        rest = await read_to_end(reader)
    assert (reply.status, reply.body) == (413, b"too large")  # no "100 Continue" before it
    assert rest == b""


async def test_an_early_413_leaves_the_connection_usable_once_the_body_is_sent() -> None:
    body = b"x" * 200_000
    async with serving(App()) as server, connect(server) as (reader, writer):
        writer.write(request("POST", "/early-413", headers={"Content-Length": str(len(body))}))
        refused = await read_response(reader)  # before any of the body was sent
        writer.write(body + request("GET", "/hello"))
        after = await read_response(reader)
    assert (refused.status, refused.body) == (413, b"too large")
    assert (after.status, after.body) == (200, HELLO)


async def test_an_early_413_with_the_body_already_sent_drains_it() -> None:
    body = b"x" * 2_000_000  # over the read-ahead limit: reading is paused when the app answers
    async with serving(App()) as server, connect(server) as (reader, writer):
        writer.write(request("POST", "/early-413", body) + request("GET", "/hello"))
        refused = await read_response(reader)
        after = await read_response(reader)
    assert (refused.status, refused.body) == (413, b"too large")
    assert (after.status, after.body) == (200, HELLO)


# -- responses -----------------------------------------------------------------------------


async def test_a_response_without_length_is_sent_chunked() -> None:
    async with (
        serving(App()) as server,
        httpx.AsyncClient(base_url=url(server), timeout=LIMIT_S) as client,
    ):
        reply = await client.get("/stream")
    assert reply.status_code == 200
    assert reply.headers["transfer-encoding"] == "chunked"
    assert "content-length" not in reply.headers
    assert reply.content == b"".join(STREAM_PARTS)


async def test_head_gets_the_headers_and_no_body() -> None:
    async with serving(App()) as server, connect(server) as (reader, writer):
        writer.write(request("HEAD", "/hello") + request("HEAD", "/stream"))
        head = await read_response(reader, is_head=True)
        streamed_head = await read_response(reader, is_head=True)
        writer.write(request("GET", "/hello"))
        after = await read_response(reader)  # starts with a status line: no stray body before it
    assert head.status == 200
    assert head.headers["content-length"] == str(len(HELLO))
    assert streamed_head.status == 200
    assert "transfer-encoding" not in streamed_head.headers
    assert (after.status, after.body) == (200, HELLO)


# -- errors the server answers on its own --------------------------------------------------


async def test_a_malformed_request_line_gets_400_and_the_connection_closes() -> None:
    async with serving(App()) as server:
        async with connect(server) as (reader, writer):
            writer.write(b"this is not http\r\n\r\n")
            reply = await read_response(reader)
            rest = await read_to_end(reader)
        await assert_serves(server)
    assert reply.status == 400
    assert reply.headers["content-type"] == "application/json"
    assert "invalid HTTP request" in orjson.loads(reply.body)["error"]
    assert rest == b""


@pytest.mark.parametrize(
    "oversized",
    [
        pytest.param(request("GET", "/hello", headers={"X-Big": "a" * 70_000}), id="header"),
        pytest.param(request("GET", "/" + "a" * 70_000), id="url"),
    ],
)
async def test_a_request_head_over_64_kib_gets_431(oversized: bytes) -> None:
    async with serving(App()) as server:
        async with connect(server) as (reader, writer):
            writer.write(oversized)
            reply = await read_response(reader)
            rest = await read_to_end(reader)
        await assert_serves(server)
    assert reply.status == 431, reply.body
    assert "over the limit" in orjson.loads(reply.body)["error"]
    assert rest == b""


async def test_headers_that_stop_arriving_get_408() -> None:
    async with serving(App(), header_timeout_s=0.3) as server:
        async with connect(server) as (reader, writer):
            writer.write(b"GET /hel")
            reply = await read_response(reader)
            rest = await read_to_end(reader)
        await assert_serves(server)
    assert reply.status == 408
    assert "did not arrive within 0.3 s" in orjson.loads(reply.body)["error"]
    assert rest == b""


async def test_a_connection_that_sends_nothing_is_closed_without_an_answer() -> None:
    async with serving(App(), header_timeout_s=0.3) as server, connect(server) as (reader, _):
        received = await read_to_end(reader)
    assert received == b""


async def test_an_idle_keep_alive_connection_is_closed_without_an_answer() -> None:
    async with serving(App(), keep_alive_s=0.3) as server, connect(server) as (reader, writer):
        writer.write(request("GET", "/hello"))
        reply = await read_response(reader)
        rest = await read_to_end(reader)
    assert (reply.status, reply.body) == (200, HELLO)
    assert rest == b""


async def test_an_app_that_raises_gets_500_and_the_server_keeps_serving() -> None:
    async with (
        serving(App()) as server,
        httpx.AsyncClient(base_url=url(server), timeout=LIMIT_S) as client,
    ):
        failed = await client.get("/boom")
        after = await client.get("/hello")
    assert failed.status_code == 500
    assert failed.json() == {"error": "internal error"}
    assert (after.status_code, after.content) == (200, HELLO)


async def test_an_app_that_returns_without_answering_gets_500() -> None:
    async with (
        serving(App()) as server,
        httpx.AsyncClient(base_url=url(server), timeout=LIMIT_S) as client,
    ):
        failed = await client.get("/silent")
        after = await client.get("/hello")
    assert failed.status_code == 500
    assert "no answer" in failed.json()["error"]
    assert (after.status_code, after.content) == (200, HELLO)


async def test_beyond_max_connections_a_request_gets_503_with_retry_after() -> None:
    app = App()
    async with serving(app, max_connections=1) as server, connect(server) as (first, first_w):
        first_w.write(request("GET", "/hold"))
        await asyncio.wait_for(app.entered.wait(), LIMIT_S)
        async with connect(server) as (second, second_w):
            second_w.write(request("GET", "/hello"))
            refused = await read_response(second)
        app.release.set()
        held = await read_response(first)
    assert refused.status == 503
    assert refused.headers["retry-after"] == "1"
    assert "connection limit" in orjson.loads(refused.body)["error"]
    assert (held.status, held.body) == (200, b"released")


# -- stopping ------------------------------------------------------------------------------


async def test_stop_lets_a_request_in_flight_finish_and_then_refuses_connections() -> None:
    app = App()
    async with (
        serving(app) as server,
        httpx.AsyncClient(base_url=url(server), timeout=LIMIT_S) as client,
    ):
        in_flight = asyncio.create_task(client.get("/slow?s=0.3"))
        await asyncio.wait_for(app.entered.wait(), LIMIT_S)
        await asyncio.wait_for(server.stop(grace_s=5), LIMIT_S)
        reply = await asyncio.wait_for(in_flight, LIMIT_S)
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", server.port)
    assert (reply.status_code, reply.content) == (200, b"slept")
    assert reply.headers["connection"] == "close"


async def test_stop_closes_an_idle_keep_alive_connection() -> None:
    async with serving(App(), keep_alive_s=60) as server, connect(server) as (reader, writer):
        writer.write(request("GET", "/hello"))
        reply = await read_response(reader)
        await asyncio.wait_for(server.stop(grace_s=5), LIMIT_S)
        rest = await read_to_end(reader)
    assert (reply.status, reply.body) == (200, HELLO)
    assert rest == b""


async def test_stop_cancels_a_request_that_outlives_the_grace_period() -> None:
    app = App()
    async with serving(app) as server, connect(server) as (reader, writer):
        writer.write(request("GET", "/slow?s=60"))
        await asyncio.wait_for(app.entered.wait(), LIMIT_S)
        await asyncio.wait_for(server.stop(grace_s=0.2), LIMIT_S)
        received = await read_to_end(reader)
    assert received == b""  # no answer: the connection closed
    assert app.cancelled == ["/slow"]


# -- TLS -----------------------------------------------------------------------------------


async def test_tls_serves_https(tmp_path: Path) -> None:
    certs = make_certificates(tmp_path)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(certs.server_cert, certs.server_key)
    client_context = ssl.create_default_context(cafile=str(certs.ca_cert))
    async with (
        serving(App(), ssl_context=server_context) as server,
        httpx.AsyncClient(
            base_url=url(server, "https"), verify=client_context, timeout=LIMIT_S
        ) as client,
    ):
        first = await client.post("/echo", content=b"over tls")
        second = await client.get("/stream")
    assert (first.status_code, first.content) == (200, b"over tls")
    assert first.headers["x-scheme"] == "https"
    assert (second.status_code, second.content) == (200, b"".join(STREAM_PARTS))
