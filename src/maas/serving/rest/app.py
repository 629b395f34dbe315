"""`RestApp`: the REST API as an RSGI application (served by granian, `rest.server`).

Per request: find the route in the table, admit the caller (`serving.admission`, the same check
gRPC makes), read the body up to the model's limit, and call the route's handler with a typed
request and its `RequestContext`, all under the request's deadline. A request whose body has not
arrived by the deadline gets 408 (the client's doing), one not answered by then 504.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any, Protocol

from maas.errors import ErrorCode, MaasError, ResourceExhausted, Unavailable
from maas.logs import request_id_var
from maas.serving.admission import Admission
from maas.serving.context import RequestContext, RequestIds
from maas.serving.dataplane import DataPlane
from maas.serving.rest.compat_sagemaker import sagemaker_target
from maas.serving.rest.handlers import (
    HTTP_STATUS,
    Headers,
    HttpRequest,
    Reply,
    check_declared_length,
    error_reply,
)
from maas.serving.rest.routes import RouteTable

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "x-request-id"
REQUEST_TIMEOUT_STATUS = 408  # the client did not send its body in time: its mistake, not ours
# An answer given before the body was read (401, 413, 404...) first reads and drops what the client
# is still sending, up to these bounds, so the client gets to read the answer instead of a reset;
# a client that stops sending (it waits for the answer first) is answered with `Connection: close`.
DRAIN_MAX_BYTES = 64 * 1024 * 1024
DRAIN_MAX_S = 2.0
DRAIN_IDLE_S = 0.2  # no body bytes for this long: the client is waiting, answer it
CLOSE = ("connection", "close")
CANCEL_SETTLE_S = 0.05  # a cancelled body read ends within one loop turn; a generous bound


class Scope(Protocol):
    """What the app reads of an RSGI HTTP scope."""

    @property
    def proto(self) -> str: ...
    @property
    def method(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def http_version(self) -> str: ...
    @property
    def headers(self) -> Headers: ...


class RestApp:
    """The REST API over one data plane.

    Args:
        data_plane: what the handlers call.
        routes: the route table (`rest.routes.bind_routes`).
        admission: authentication, scopes, rate and size limits.
        max_in_flight: requests answered at once; beyond it, 503 at once (None: no cap).
    """

    def __init__(
        self,
        data_plane: DataPlane,
        routes: RouteTable,
        admission: Admission,
        *,
        max_in_flight: int | None = None,
    ) -> None:
        self._dp = data_plane
        self._routes = routes
        self._admission = admission
        self._timeout_s = data_plane.config.request_timeout_s
        self._max_in_flight = max_in_flight
        self.in_flight: set[asyncio.Task[Any]] = set()
        self._request_id = RequestIds()

    async def __rsgi__(self, scope: Scope, protocol: Any) -> None:
        if scope.proto != "http":
            return  # websockets are not served
        headers = scope.headers
        request_id = self._request_id(headers.get(REQUEST_ID_HEADER))
        token = request_id_var.set(request_id)
        task = asyncio.current_task()
        exchange = _Exchange()
        if task is not None:
            self.in_flight.add(task)
        try:
            reply = await self._answer(scope, protocol, headers, request_id, exchange)
            unfinished = await exchange.finish_body(protocol, headers)
            out = [("content-type", reply.content_type), (REQUEST_ID_HEADER, request_id)]
            out.extend(reply.headers)
            if unfinished is not None or exchange.is_held_back:
                out.append(CLOSE)  # the body was not read: the connection cannot be reused
            if unfinished is not None:
                # Stop waiting for the rest of the body, and let the read end, before answering:
                # an answer handed over while a read is pending can stay unsent.
                unfinished.cancel()
                await asyncio.wait({unfinished}, timeout=CANCEL_SETTLE_S)
                await asyncio.sleep(CANCEL_SETTLE_S)  # and the server's side of it, in its thread
            if reply.stream is None:
                protocol.response_bytes(reply.status, out, reply.body)
            else:
                await _send_stream(protocol, reply.status, out, reply.stream)
        finally:
            request_id_var.reset(token)
            if task is not None:
                self.in_flight.discard(task)

    async def _answer(
        self, scope: Scope, protocol: Any, headers: Headers, request_id: str, exchange: _Exchange
    ) -> Reply:
        refused = self._refused_at_once(scope, exchange)
        if refused is not None:
            return refused
        method = scope.method
        shape, model, version = self._routes.match(scope.path)
        bound = self._routes.find(method, shape)
        kind = bound.route.kind if bound is not None else self._routes.kind_of(method, shape)
        context = RequestContext.starting_now(request_id, "rest", self._timeout_s)
        try:
            async with asyncio.timeout(self._timeout_s):
                if kind == "sagemaker_invocations":
                    model = sagemaker_target(headers, self._dp.repository.model_names())[0]
                context.principal = await self._admission.admit(
                    headers.get("authorization"), kind, model
                )
                if bound is None:
                    return self._no_route(method, shape, scope.path)
                body = b""
                if bound.route.has_body:
                    body = await self._read_body(protocol, headers, model, exchange)
                exchange.body_read = True
                context.protocol = bound.route.protocol
                return await bound.handler(HttpRequest(model, version, headers, body, context))
        except TimeoutError:
            return self._timed_out(exchange.body_read, scope.path)
        except MaasError as err:
            if exchange.reading is not None and not exchange.body_read and model is not None:
                self._dp.count_rejected(model, version, "rest", err.code)
            if err.code is not ErrorCode.INTERNAL:
                return refusal(err)
            log.error("request.failed", exc_info=err, extra={"path": scope.path})
        except Exception as err:  # a transport handler is a boundary: never crash the server
            log.error("request.failed", exc_info=err, extra={"path": scope.path})
        return error_reply(500, f"internal error; request id {request_id}")

    def _refused_at_once(self, scope: Scope, exchange: _Exchange) -> Reply | None:
        """The answer to a request refused before anything else is looked at, if it is."""
        if self._max_in_flight is not None and len(self.in_flight) > self._max_in_flight:
            return refusal(Unavailable(f"over {self._max_in_flight} requests in flight; retry"))
        if scope.http_version != "2" and not _has_one_host(scope):
            exchange.is_held_back = True  # answered without its body: close the connection
            return error_reply(400, "an HTTP/1.1 request needs exactly one Host header")
        return None

    def _no_route(self, method: str, shape: str, path: str) -> Reply:
        if self._routes.knows_shape(shape):
            return error_reply(405, f"method {method} is not allowed on {path}")
        return error_reply(404, f"no route for {path}")

    def _timed_out(self, body_done: bool, path: str) -> Reply:
        log.info("request.timeout", extra={"path": path, "body_done": body_done})
        if not body_done:
            message = f"the request body did not arrive within {self._timeout_s:g} s"
            return error_reply(REQUEST_TIMEOUT_STATUS, message)
        message = f"the request was not answered within {self._timeout_s:g} s"
        return error_reply(HTTP_STATUS[ErrorCode.DEADLINE_EXCEEDED], message)

    async def _read_body(
        self, protocol: Any, headers: Headers, model: str | None, exchange: _Exchange
    ) -> bytes:
        """The whole body; 413 once it is over the limit, declared or sent.

        The body is read by a task of its own that a deadline does not cancel (a cancelled read
        leaves the HTTP stream unusable), so a late body can still be drained before answering.
        """
        limit = self._admission.max_request_bytes(model)
        check_declared_length(headers, limit)
        exchange.reading = asyncio.create_task(_collect(protocol, limit, exchange))
        chunks = await asyncio.shield(exchange.reading)
        if chunks is None:  # over the limit: what arrived says by how much
            raise self._admission.too_large(exchange.received_bytes, model)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class _Exchange:
    """What became of one request's body: read, being read, or left unread."""

    __slots__ = ("body_read", "is_held_back", "reading", "received_bytes")

    def __init__(self) -> None:
        self.body_read = False
        self.is_held_back = False  # the client waits for a 100 (Continue) that never came
        self.reading: asyncio.Task[list[bytes] | None] | None = None
        self.received_bytes = 0

    async def finish_body(
        self, protocol: Any, headers: Headers
    ) -> asyncio.Task[list[bytes] | None] | None:
        """Before answering, read and drop what the client is still sending (within
        `DRAIN_MAX_BYTES` and `DRAIN_MAX_S`), so it gets to read the answer, not a reset.

        Returns:
            The read still pending after that, for the caller to cancel before answering.
        """
        reading = self.reading
        if self.body_read and (reading is None or reading.done()):
            return None  # the usual case: the whole body was read
        if reading is None:
            if not _has_body(headers):
                return None
            if headers.get("expect") is not None:
                self.is_held_back = True  # 100-continue: nothing comes unless we ask
                return None
            reading = asyncio.create_task(_collect(protocol, 0, self))
        loop = asyncio.get_running_loop()
        give_up = loop.time() + DRAIN_MAX_S
        seen = -1
        while not reading.done() and seen != self.received_bytes and loop.time() < give_up:
            seen = self.received_bytes
            await asyncio.wait({reading}, timeout=DRAIN_IDLE_S)
        reading.add_done_callback(_drop_outcome)  # a broken stream is nothing to report
        return None if reading.done() else reading


async def _send_stream(
    protocol: Any, status: int, headers: list[tuple[str, str]], chunks: AsyncIterator[bytes]
) -> None:
    """Send a streamed body chunk by chunk until it ends or the client goes away; either way
    the stream is closed (a generator's `finally` stops its work)."""
    transport = protocol.response_stream(status, headers)
    sending = asyncio.create_task(_send_all(transport, chunks))
    gone = asyncio.create_task(_client_gone(protocol))
    try:
        await asyncio.wait({sending, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in (sending, gone):
            waiter.cancel()
        await asyncio.gather(sending, gone, return_exceptions=True)


async def _client_gone(protocol: Any) -> None:
    """Return once the client closed its connection (granian's awaitable, in a task)."""
    await protocol.client_disconnect()


async def _send_all(transport: Any, chunks: AsyncIterator[bytes]) -> None:
    """Write every chunk; the iterator is closed however this ends."""
    try:
        async for chunk in chunks:
            await transport.send_bytes(chunk)
    except Exception as err:  # the connection broke under us: nothing left to answer
        log.info("response.stream_broken", extra={"error": str(err)})
    finally:
        closing = getattr(chunks, "aclose", None)
        if closing is not None:
            await closing()


def _drop_outcome(task: asyncio.Task[list[bytes] | None]) -> None:
    if not task.cancelled():
        task.exception()


def _has_one_host(scope: Scope) -> bool:
    """RFC 9112 3.2: exactly one Host header in HTTP/1.1 (at most one in HTTP/1.0)."""
    hosts = len(scope.headers.get_all("host"))
    return hosts == 1 or (hosts == 0 and scope.http_version == "1")


def _has_body(headers: Headers) -> bool:
    """Whether the request declares a body."""
    length = headers.get("content-length")
    return headers.get("transfer-encoding") is not None or (length is not None and length != "0")


async def _collect(protocol: Any, limit: int, exchange: _Exchange) -> list[bytes] | None:
    """The body's chunks; None when it went over `limit` (what follows is read and dropped, up
    to `DRAIN_MAX_BYTES` more)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in protocol:
        size += len(chunk)
        exchange.received_bytes = size
        if size <= limit:
            chunks.append(chunk)
        elif size > limit + DRAIN_MAX_BYTES:
            break
    return chunks if size <= limit else None


def refusal(err: MaasError) -> Reply:
    """The answer to a refused request, with the headers its status calls for."""
    headers: list[tuple[str, str]] = []
    if err.code is ErrorCode.UNAUTHENTICATED:
        headers.append(("www-authenticate", 'Bearer realm="maas"'))
    if isinstance(err, ResourceExhausted):
        headers.append(("retry-after", retry_after(err)))
    reply = error_reply(HTTP_STATUS[err.code], str(err))
    if headers:
        return Reply(reply.status, reply.body, reply.content_type, (*reply.headers, *headers))
    return reply


def retry_after(err: ResourceExhausted) -> str:
    """`Retry-After` in whole seconds, at least 1 (HTTP has no fractions)."""
    seconds = err.retry_after_s if err.retry_after_s is not None else 1.0
    return str(max(1, -int(-seconds // 1)))
