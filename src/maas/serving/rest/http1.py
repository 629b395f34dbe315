"""`Http1Server`: a lean HTTP/1.1 server for ASGI apps, on httptools' parser.

The REST API's per-request cost on one core is what caps served throughput for small models
(docs/performance-notes.md), so the server around the app is kept small: one `asyncio.Protocol`
per connection feeding httptools, one task per request, and the response head and body written
with a single `transport.write` when the app sends its whole body at once (it always does).

What it does: keep-alive and pipelining (answers go out in request order), request bodies
streamed to the app with flow control, `Expect: 100-continue`, chunked responses when the app
gives no length, TLS through the event loop, a cap on connections and requests in flight (503
beyond it), a time limit for a request's headers (408) and for idle keep-alive connections, and
a graceful stop that lets in-flight requests finish. What it leaves out: HTTP/2, upgrades
(answered as plain HTTP/1.1), trailers.
"""

from __future__ import annotations

import asyncio
import collections
import http
import logging
import ssl
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, cast
from urllib.parse import unquote

import httptools
import orjson

from maas.errors import Unavailable

log = logging.getLogger(__name__)

Message = MutableMapping[str, Any]
Asgi = Callable[
    [
        MutableMapping[str, Any],
        Callable[[], Awaitable[Message]],
        Callable[[Message], Awaitable[None]],
    ],
    Awaitable[None],
]

HEADER_TIMEOUT_S = 10.0  # a request's headers must arrive within this (slow-header attacks)
KEEP_ALIVE_S = 5.0  # an idle keep-alive connection is closed after this
MAX_HEADER_BYTES = 64 * 1024  # request line and headers together
HIGH_WATER_BYTES = 256 * 1024  # unread request body buffered before reading pauses
BACKLOG = 2048
_ASGI = {"version": "3.0", "spec_version": "2.3"}
_REASONS = {status.value: status.phrase.encode() for status in http.HTTPStatus}
_STATUS_LINES: dict[int, bytes] = {}
_DISCONNECT: Message = {"type": "http.disconnect"}


def _status_line(status: int) -> bytes:
    line = _STATUS_LINES.get(status)
    if line is None:
        line = b"HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, b""))
        _STATUS_LINES[status] = line
    return line


def _plain_error(status: int, message: str) -> bytes:
    """A whole JSON error response that closes the connection, for answers the server gives
    without the app."""
    body = orjson.dumps({"error": message})
    retry = b"retry-after: 1\r\n" if status == 503 else b""
    return (
        _status_line(status)
        + b"content-type: application/json\r\ncontent-length: %d\r\n" % len(body)
        + b"connection: close\r\n"
        + retry
        + b"\r\n"
        + body
    )


class Http1Server:
    """Serves `app` on `host:port` (0 picks a free port; `port` tells which).

    Args:
        app: an ASGI 3 application (HTTP only; no lifespan events are sent).
        ssl_context: serve HTTPS with it.
        max_connections: beyond this many open connections, or requests in flight, requests
            are answered 503 at once.
        header_timeout_s: a request whose headers take longer gets 408 and the connection closes.
        keep_alive_s: idle keep-alive connections close after this.
    """

    def __init__(
        self,
        app: Asgi,
        host: str,
        port: int,
        *,
        ssl_context: ssl.SSLContext | None = None,
        max_connections: int | None = None,
        header_timeout_s: float = HEADER_TIMEOUT_S,
        keep_alive_s: float = KEEP_ALIVE_S,
    ) -> None:
        self.app = app
        self.host = host
        self.ssl_context = ssl_context
        self.max_connections = max_connections
        self.header_timeout_s = header_timeout_s
        self.keep_alive_s = keep_alive_s
        self.connections: set[_Connection] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.is_stopping = False
        self._requested_port = port
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        self._port: int | None = None

    @property
    def port(self) -> int:
        """The bound port (also when 0 was asked)."""
        if self._port is None:
            raise Unavailable("the HTTP server is not started")
        return self._port

    async def start(self) -> None:
        """Bind and start accepting.

        Raises:
            Unavailable: the address cannot be bound.
        """
        loop = asyncio.get_running_loop()
        try:
            self._server = await loop.create_server(
                lambda: _Connection(self),
                self.host,
                self._requested_port,
                ssl=self.ssl_context,
                backlog=BACKLOG,
                reuse_address=True,
            )
        except OSError as err:
            raise Unavailable(
                f"cannot listen on {self.host}:{self._requested_port}: {err.strerror or err}"
            ) from err
        self._port = int(self._server.sockets[0].getsockname()[1])
        self._sweeper = loop.call_later(self._sweep_s, self._sweep)

    @property
    def _sweep_s(self) -> float:
        return max(0.01, min(0.5, self.header_timeout_s / 3, self.keep_alive_s / 3))

    def _sweep(self) -> None:
        """Enforce the connections' time limits, then come back in a fraction of the shortest."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        for conn in list(self.connections):
            conn.check_time(now)
        if self._server is not None:
            self._sweeper = loop.call_later(self._sweep_s, self._sweep)

    def is_over_limit(self) -> bool:
        """Whether a new request must be refused (connection cap)."""
        limit = self.max_connections
        return limit is not None and (len(self.connections) > limit or len(self.tasks) >= limit)

    async def stop(self, grace_s: float = 5.0) -> None:
        """Stop accepting; idle connections close now, busy ones after their answer; requests
        still running after `grace_s` are cancelled."""
        server, self._server = self._server, None
        if server is None:
            return
        self.is_stopping = True
        server.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
        for conn in list(self.connections):
            conn.shut_down()
        if self.tasks:
            await asyncio.wait(set(self.tasks), timeout=grace_s)
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.wait(set(self.tasks), timeout=1.0)
        for conn in list(self.connections):
            conn.close()
        await server.wait_closed()


class _Cycle:
    """One request on a connection: its body as it arrives, and its answer as the app sends it."""

    __slots__ = (
        "body_complete",
        "chunked",
        "chunks",
        "conn",
        "disconnected",
        "expect_continue",
        "head",
        "is_head",
        "keep_alive",
        "response_complete",
        "response_started",
        "scope",
        "size",
        "waiter",
    )

    def __init__(
        self, conn: _Connection, scope: dict[str, Any], keep_alive: bool, expect_continue: bool
    ) -> None:
        self.conn = conn
        self.scope = scope
        self.keep_alive = keep_alive
        self.expect_continue = expect_continue
        self.is_head = scope["method"] == "HEAD"
        self.chunks: list[bytes] = []
        self.size = 0
        self.body_complete = False
        self.disconnected = False
        self.response_started = False
        self.response_complete = False
        self.chunked = False
        self.head = b""
        self.waiter: asyncio.Future[None] | None = None

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def receive(self) -> Message:
        if self.disconnected or self.response_complete:
            return _DISCONNECT
        if not self.chunks and not self.body_complete:
            conn = self.conn
            if self.expect_continue:
                self.expect_continue = False
                conn.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            conn.resume_reading()
            self.waiter = conn.loop.create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None
            if self.disconnected and not self.chunks:
                return _DISCONNECT
        chunks = self.chunks
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        self.size = 0
        self.conn.resume_reading()
        return {"type": "http.request", "body": body, "more_body": not self.body_complete}

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            if self.response_started:
                raise RuntimeError("the response has already started")
            self.response_started = True
            self._start(message)
            return
        if kind != "http.response.body":
            raise RuntimeError(f"unexpected ASGI message {kind!r}")
        if not self.response_started:
            raise RuntimeError("the response body came before its start")
        if self.response_complete:
            raise RuntimeError("the response is already complete")
        self._send_body(message.get("body", b""), message.get("more_body", False))

    def _send_body(self, body: bytes, more: bool) -> None:
        if self.is_head:
            body = b""
        elif self.chunked:
            body = (b"%x\r\n%s\r\n" % (len(body), body) if body else b"") + (
                b"" if more else b"0\r\n\r\n"
            )
        if self.head:
            body = self.head + body
            self.head = b""
        if not self.disconnected and body:
            self.conn.write(body)
        if not more:
            self.response_complete = True
            self.conn.on_response_complete(self)

    def _start(self, message: Message) -> None:
        parts = [_status_line(int(message["status"]))]
        has_length = False
        for name, value in message.get("headers", ()):
            lowered = name.lower()
            if lowered == b"content-length":
                has_length = True
            elif lowered == b"connection" and value.lower() == b"close":
                self.keep_alive = False
            parts.append(b"%s: %s\r\n" % (name, value))
        if not has_length and not self.is_head:
            self.chunked = True
            parts.append(b"transfer-encoding: chunked\r\n")
        if not self.keep_alive or self.conn.server.is_stopping:
            self.keep_alive = False
            parts.append(b"connection: close\r\n")
        parts.append(b"\r\n")
        self.head = b"".join(parts)


class _Connection(asyncio.Protocol):
    """One client connection: parses requests, runs one at a time, answers in order."""

    def __init__(self, server: Http1Server) -> None:
        self.server = server
        self.loop = asyncio.get_running_loop()
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._header_bytes = 0
        self._parsing: _Cycle | None = None  # the request whose body is arriving
        self._active: _Cycle | None = None  # the request being answered
        self._waiting: collections.deque[_Cycle] = collections.deque()  # pipelined requests
        # The pending time limit (loop time) and what to do then; `Http1Server` checks them
        # a few times a second, which is cheaper than a timer handle per request.
        self._due: float | None = None
        self._on_due: Callable[[], None] | None = None
        self._reading_paused = False
        self._closed = False
        self._client: tuple[str, int] | None = None
        self._local: tuple[str, int] | None = None
        self._scheme = "https" if server.ssl_context is not None else "http"

    # -- transport events ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        self.server.connections.add(self)
        peer = transport.get_extra_info("peername")
        local = transport.get_extra_info("sockname")
        self._client = (str(peer[0]), int(peer[1])) if isinstance(peer, tuple) else None
        self._local = (str(local[0]), int(local[1])) if isinstance(local, tuple) else None
        self._arm(self.server.header_timeout_s, self._headers_too_slow)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self.server.connections.discard(self)
        self._disarm()
        for cycle in (self._parsing, self._active, *self._waiting):
            if cycle is not None:
                cycle.disconnected = True
                cycle.wake()
        self._waiting.clear()

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            pass  # upgrades (h2c, websockets) are not offered: the request is answered as HTTP/1.1
        except httptools.HttpParserError as err:
            if isinstance(err.__context__, _TooLarge):  # raised in a callback, wrapped by httptools
                self._fail(431, f"request headers are over the limit of {MAX_HEADER_BYTES} bytes")
                return
            self._fail(400, f"invalid HTTP request: {err}")

    def eof_received(self) -> bool | None:
        return None  # close our side too

    # -- parser callbacks ----------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = []
        self._header_bytes = 0
        if self._active is None and not self._waiting:
            self._arm(self.server.header_timeout_s, self._headers_too_slow)

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._header_bytes += len(url)
        if self._header_bytes > MAX_HEADER_BYTES:
            raise _TooLarge

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value) + 4
        if self._header_bytes > MAX_HEADER_BYTES:
            raise _TooLarge
        self._headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        self._disarm()
        parser = self._parser
        method = parser.get_method().decode("ascii")
        url = httptools.parse_url(self._url)
        raw_path: bytes = url.path or b"/"
        headers = self._headers
        expect_continue = False
        for name, value in headers:
            if name == b"expect" and value.lower() == b"100-continue":
                expect_continue = True
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": _ASGI,
            "http_version": parser.get_http_version(),
            "method": method,
            "scheme": self._scheme,
            "path": unquote(raw_path.decode("latin-1")) if b"%" in raw_path else raw_path.decode(),
            "raw_path": raw_path,
            "query_string": url.query or b"",
            "root_path": "",
            "headers": headers,
            "client": self._client,
            "server": self._local,
        }
        cycle = _Cycle(self, scope, parser.should_keep_alive(), expect_continue)
        self._parsing = cycle
        if self._active is None:
            self._begin(cycle)
        else:
            self._waiting.append(cycle)

    def on_body(self, body: bytes) -> None:
        cycle = self._parsing
        if cycle is None or cycle.response_complete:
            return  # the answer went out already; the rest of the body is dropped
        cycle.chunks.append(body)
        cycle.size += len(body)
        if cycle.size > HIGH_WATER_BYTES:
            self.pause_reading()
        cycle.wake()

    def on_message_complete(self) -> None:
        cycle = self._parsing
        self._parsing = None
        if cycle is not None:
            cycle.body_complete = True
            cycle.wake()
            if cycle.response_complete and self._active is None:
                self._next()  # the dropped rest of an early-answered body is in
        if self._waiting:
            self.pause_reading()  # pipelined: read on once the answers caught up

    # -- running requests ----------------------------------------------------------------

    def _begin(self, cycle: _Cycle) -> None:
        self._active = cycle
        server = self.server
        if server.is_over_limit():
            self._refuse(cycle, 503, "the server is at its connection limit; retry later")
            return
        task = self.loop.create_task(self._run(cycle))
        server.tasks.add(task)
        task.add_done_callback(server.tasks.discard)

    async def _run(self, cycle: _Cycle) -> None:
        try:
            await self.server.app(cycle.scope, cycle.receive, cycle.send)
        except asyncio.CancelledError:
            self.close()
            raise
        except Exception as err:  # the connection is a boundary: log, answer 500, keep serving
            log.error("http.app_failed", exc_info=err, extra={"path": cycle.scope["path"]})
            if not cycle.response_started:
                self._refuse(cycle, 500, "internal error")
            else:
                self.close()
            return
        if not cycle.response_complete:
            if not cycle.response_started:
                log.error("http.no_answer", extra={"path": cycle.scope["path"]})
                self._refuse(cycle, 500, "internal error: no answer")
            else:
                self.close()  # an answer cut short: the client must not wait for the rest

    def _refuse(self, cycle: _Cycle, status: int, message: str) -> None:
        cycle.response_started = cycle.response_complete = True
        cycle.keep_alive = False
        self.write(_plain_error(status, message))
        self.on_response_complete(cycle)

    def on_response_complete(self, cycle: _Cycle) -> None:
        if cycle is not self._active:
            return
        self._active = None
        if not cycle.keep_alive or self.server.is_stopping:
            self.close()
        elif cycle.body_complete:
            self._next()
        elif cycle.expect_continue:
            self.close()  # answered before asking for the body: the client is not sending it
        else:
            # Answered before the body ended (413, 401): read the rest and drop it, in time.
            self.resume_reading()
            self._arm(self.server.header_timeout_s, self.close)

    def _next(self) -> None:
        """Start the next pipelined request, or wait for one."""
        if self._waiting:
            self._begin(self._waiting.popleft())
            return
        self.resume_reading()
        self._arm(self.server.keep_alive_s, self.close)

    # -- helpers -------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        if not self._closed and self._transport is not None:
            self._transport.write(data)

    def pause_reading(self) -> None:
        if not self._reading_paused and not self._closed and self._transport is not None:
            self._reading_paused = True
            self._transport.pause_reading()

    def resume_reading(self) -> None:
        if self._reading_paused and not self._closed and self._transport is not None:
            self._reading_paused = False
            self._transport.resume_reading()

    def shut_down(self) -> None:
        """Close now when idle; otherwise after the answer in progress."""
        if self._active is None and self._parsing is None:
            self.close()

    def close(self) -> None:
        self._disarm()
        if not self._closed and self._transport is not None:
            self._closed = True
            self._transport.close()

    def _fail(self, status: int, message: str) -> None:
        if self._active is None or not self._active.response_started:
            self.write(_plain_error(status, message))
        self.close()

    def check_time(self, now: float) -> None:
        """Act on a time limit that has passed (called by the server's sweep)."""
        due, on_due = self._due, self._on_due
        if due is not None and on_due is not None and now >= due:
            self._due = self._on_due = None
            on_due()

    def _headers_too_slow(self) -> None:
        if self._header_bytes:  # the head had begun (it counts the URL too)
            self._fail(
                408, f"the request headers did not arrive within {self.server.header_timeout_s:g} s"
            )
        else:
            self.close()

    def _arm(self, delay_s: float, callback: Callable[[], None]) -> None:
        self._due = self.loop.time() + delay_s
        self._on_due = callback

    def _disarm(self) -> None:
        self._due = None


class _TooLarge(Exception):
    """Raised from a parser callback when the request head is over `MAX_HEADER_BYTES`."""
