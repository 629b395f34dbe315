"""What a hostile HTTP/1.1 client can make the REST server hold, whatever HTTP server runs it:
a client that pipelines requests and never reads the answers, a header line that never ends,
a request head over any sane limit. The server's peak memory stays bounded, the attacker is
refused, and other clients keep being answered meanwhile."""

from __future__ import annotations

import asyncio
import contextlib
import math
import socket
import statistics
import threading
import time
from dataclasses import dataclass

import pytest
from wire_helpers import (
    LIMIT_S,
    OPENAPI,
    READY,
    LiveServer,
    assert_serves,
    connect,
    raw_socket,
    read_response,
    request,
    wait_until_idle,
)

pytestmark = pytest.mark.timeout(60)  # every wait inside is bounded too (LIMIT_S)

GROWTH_MIB = 32  # the bound on the server's peak growth; every attack offers it far more
FLOOD_MIB = 256  # answers a never-reading client asks for
HEADER_FLOOD_MIB = 64  # one header line's bytes, unless the server refuses it first
REFUSED_WITHIN_MIB = 16  # a head limit (hundreds of KiB) plus what the sockets buffer
SEND_BLOCK_S = 2.0  # a send blocked this long: the server stopped reading
PROBES = 15  # round trips of another client measured during an attack
PROBE_GAP_S = 0.05
ROUND_TRIP_BOUND_S = 0.05  # the median round trip of the other client under attack
MIB = 1024 * 1024


def send_until_blocked(sock: socket.socket, data: bytes) -> int:
    """Send `data` until all is sent, a send blocks for `SEND_BLOCK_S`, or the server hangs
    up; the number of bytes sent."""
    sock.settimeout(SEND_BLOCK_S)
    view = memoryview(data)
    sent = 0
    with contextlib.suppress(TimeoutError, ConnectionError):
        while sent < len(data):
            sent += sock.send(view[sent : sent + 65536])
    return sent


# -- a client that never reads -------------------------------------------------------------


@pytest.mark.slow
async def test_a_client_that_never_reads_its_answers_cannot_grow_the_server(
    wire_server: LiveServer,
) -> None:
    """Pipelined requests for a 30 KB document, FLOOD_MIB of answers in all, never read: the
    server stops reading once its answers back up (write back-pressure), so what it holds for
    this client stays bounded, and it keeps answering others."""
    async with connect(wire_server) as (reader, writer):
        writer.write(request("GET", OPENAPI))
        answer_bytes = len((await read_response(reader)).body)
    count = FLOOD_MIB * MIB // answer_bytes
    flood = request("GET", OPENAPI) * count
    with wire_server.memory_bound(GROWTH_MIB):
        sock = await asyncio.to_thread(raw_socket, wire_server)
        try:
            await asyncio.to_thread(send_until_blocked, sock, flood)
            await wait_until_idle(wire_server)  # the server did all it was going to do
            await assert_serves(wire_server)
        finally:
            sock.close()
    await assert_serves(wire_server)


# -- a header line that never ends ---------------------------------------------------------


@dataclass(frozen=True)
class HeaderFlood:
    """One connection sending a header line that never ends, until the server refuses it."""

    sent_bytes: int
    is_refused: bool  # the server closed the connection before the whole flood went out
    answer: bytes  # what the server answered before closing (a reset loses it)


def flood_one_header(server: LiveServer, started: threading.Event) -> HeaderFlood:
    sock = raw_socket(server)
    chunk = b"a" * 65536
    sent = 0
    is_refused = False
    try:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Endless: ")
        started.set()
        while sent < HEADER_FLOOD_MIB * MIB:
            sent += sock.send(chunk)
    except ConnectionError:
        is_refused = True
    except TimeoutError:
        pass  # the server stopped reading without refusing
    try:
        return HeaderFlood(sent, is_refused, read_what_is_left(sock))
    finally:
        sock.close()


def read_what_is_left(sock: socket.socket) -> bytes:
    """What the server sent before closing (nothing when it did not close within a moment)."""
    sock.settimeout(0.5)
    parts = []
    with contextlib.suppress(OSError):
        while part := sock.recv(65536):
            parts.append(part)
    return b"".join(parts)


def flood_headers(
    server: LiveServer, started: threading.Event, stop: threading.Event
) -> list[HeaderFlood]:
    """Header floods one after another until `stop`, or until one is not refused."""
    floods = []
    while not stop.is_set():
        floods.append(flood_one_header(server, started))
        if not floods[-1].is_refused:
            break
    started.set()
    return floods


async def probe_round_trips(server: LiveServer) -> list[float]:
    """Round trips of `GET /v2/health/ready` on one keep-alive connection (infinite for the
    probes left when one is not answered within `LIMIT_S`)."""
    times: list[float] = []
    async with connect(server) as (reader, writer):
        while len(times) < PROBES:
            began = time.perf_counter()
            writer.write(request("GET", READY))
            try:
                reply = await read_response(reader)
            except (TimeoutError, ConnectionError, asyncio.IncompleteReadError):
                return times + [math.inf] * (PROBES - len(times))  # dropped or left waiting
            times.append(time.perf_counter() - began)
            assert reply.status == 200
            await asyncio.sleep(PROBE_GAP_S)
    return times


@pytest.mark.slow
async def test_an_endless_header_line_is_refused_while_others_are_served(
    wire_server: LiveServer,
) -> None:
    """A header line that never ends is refused with 431 once the head passes the server's
    limit, not when the line ends; meanwhile another client's median round trip stays under
    ROUND_TRIP_BOUND_S."""
    started, stop = threading.Event(), threading.Event()
    await assert_serves(wire_server)  # a warm server, so the probes measure only the attack
    with wire_server.memory_bound(GROWTH_MIB):
        attack = asyncio.create_task(asyncio.to_thread(flood_headers, wire_server, started, stop))
        try:
            await asyncio.to_thread(started.wait, LIMIT_S)
            round_trips = await probe_round_trips(wire_server)
        finally:
            stop.set()
            floods = await asyncio.wait_for(attack, 3 * LIMIT_S)
    assert floods
    for flood in floods:
        assert flood.is_refused, f"{flood.sent_bytes} bytes of one header line were read"
        assert flood.sent_bytes < REFUSED_WITHIN_MIB * MIB
        assert flood.answer.startswith(b"HTTP/1.1 431 "), flood.answer[:200]
    assert statistics.median(round_trips) < ROUND_TRIP_BOUND_S, round_trips
    await assert_serves(wire_server)


@pytest.mark.parametrize(
    ("head", "statuses"),
    [
        pytest.param(request("GET", READY, headers={"X-Big": "a" * MIB}), (b"431",), id="header"),
        pytest.param(request("GET", "/" + "a" * MIB), (b"414", b"431"), id="url"),
    ],
)
async def test_a_request_head_over_1_mib_is_refused(
    wire_server: LiveServer, head: bytes, statuses: tuple[bytes, ...]
) -> None:
    with wire_server.memory_bound(GROWTH_MIB):
        sock = await asyncio.to_thread(raw_socket, wire_server)
        try:
            await asyncio.to_thread(send_until_blocked, sock, head)
            answer = await asyncio.to_thread(read_what_is_left, sock)
        finally:
            sock.close()
        await assert_serves(wire_server)
    assert answer[9:12] in statuses, answer[:200]
