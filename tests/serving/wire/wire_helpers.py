"""Helpers for the HTTP wire tests: the handle of a `maas serve` process (its port, keys and
memory), raw HTTP/1.1 requests and a reader of raw answers."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson

LIMIT_S = 10.0  # upper bound for any single wait, so that a broken server fails instead of hanging
MAX_REQUEST_BYTES = 1024 * 1024  # the served limit on request bodies
MODEL = "iris"
INFER = f"/v2/models/{MODEL}/infer"
METADATA = f"/v2/models/{MODEL}"
READY = "/v2/health/ready"  # open: needs no credentials
OPENAPI = "/v2/openapi.json"  # open, and about 30 KB: a small request with a large answer
ROWS = [[0.5, -1.0, 2.0, 0.25], [1.0, 1.0, -1.0, 0.0]]


def infer_body(rows: list[list[float]] = ROWS) -> bytes:
    """A v2 infer request body for `rows` of the 4-feature classifier."""
    flat = [value for row in rows for value in row]
    tensor = {"name": "input", "datatype": "FP32", "shape": [len(rows), 4], "data": flat}
    return orjson.dumps({"inputs": [tensor]})


@dataclass(frozen=True)
class LiveServer:
    """A running `maas serve` process and the tokens of its API keys, by key name."""

    port: int
    pid: int
    tokens: dict[str, str] = field(default_factory=dict)
    scheme: str = "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def auth(self, key: str = "admin") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[key]}"}

    def _status(self, field_name: str) -> int:
        status = Path(f"/proc/{self.pid}/status").read_text()
        found = re.search(rf"^{field_name}:\s+(\d+) kB", status, re.MULTILINE)
        assert found, status
        return int(found.group(1))

    def rss_kib(self) -> int:
        """The server's resident memory now."""
        return self._status("VmRSS")

    def peak_rss_kib(self) -> int:
        """The server's highest resident memory since the last `reset_peak`."""
        return self._status("VmHWM")

    def reset_peak(self) -> None:
        """Start measuring the peak resident memory from now (Linux `clear_refs`)."""
        Path(f"/proc/{self.pid}/clear_refs").write_text("5")

    def cpu_ticks(self) -> int:
        """User and system clock ticks the server has used."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rpartition(")")[2].split()
        return int(fields[11]) + int(fields[12])

    @contextlib.contextmanager
    def memory_bound(self, growth_mib: float) -> Iterator[None]:
        """Assert that the server's peak memory during the block grows by under `growth_mib`."""
        before = self.rss_kib()
        self.reset_peak()
        yield
        growth_kib = self.peak_rss_kib() - before
        assert growth_kib < growth_mib * 1024, f"the server grew by {growth_kib} KiB"


async def wait_until_idle(server: LiveServer, quiet_s: float = 0.5) -> None:
    """Wait (up to `LIMIT_S`) until the server has used no CPU for `quiet_s`: it finished
    what it was given, or stopped reading."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + LIMIT_S
    ticks = server.cpu_ticks()
    while loop.time() < give_up:
        await asyncio.sleep(quiet_s)
        now = server.cpu_ticks()
        if now == ticks:
            return
        ticks = now


# -- raw requests and answers --------------------------------------------------------------


def request(
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    *,
    version: str = "HTTP/1.1",
    host: str | None = "127.0.0.1",
) -> bytes:
    """One request's bytes; `Content-Length` follows `body` unless `headers` set it."""
    lines = [f"{method} {path} {version}"]
    if host is not None:
        lines.append(f"Host: {host}")
    given = {name.lower() for name in headers or {}}
    if body is not None and "content-length" not in given and "transfer-encoding" not in given:
        lines.append(f"Content-Length: {len(body)}")
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


@dataclass(frozen=True)
class Response:
    """One raw answer: status, headers (lower-cased names, last one wins) and body."""

    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def closes(self) -> bool:
        """Whether the answer says the connection closes after it."""
        return "close" in self.headers.get("connection", "").lower()

    def json(self) -> object:
        return orjson.loads(self.body)


async def read_response(reader: asyncio.StreamReader) -> Response:
    """The next whole answer on `reader` (interim 1xx answers are returned as they come)."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), LIMIT_S)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    if 100 <= status < 200 or status in (204, 304):
        body = b""
    elif "content-length" in headers:
        body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), LIMIT_S)
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        body = await asyncio.wait_for(read_chunked(reader), LIMIT_S)
    else:
        body = await read_to_end(reader)
    return Response(status, headers, body)


async def read_final_response(reader: asyncio.StreamReader) -> tuple[list[int], Response]:
    """The interim statuses (1xx) that came first, and the final answer."""
    interim: list[int] = []
    while True:
        reply = await read_response(reader)
        if reply.status >= 200:
            return interim, reply
        interim.append(reply.status)


async def read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":
                pass  # trailers
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        assert await reader.readexactly(2) == b"\r\n"


async def read_to_end(reader: asyncio.StreamReader) -> bytes:
    """What arrives until the server closes the connection (a reset counts as closing)."""
    try:
        return await asyncio.wait_for(reader.read(), LIMIT_S)
    except ConnectionResetError:
        return b""


async def read_answers(reader: asyncio.StreamReader, most: int) -> list[Response]:
    """Up to `most` answers, fewer when the server closes the connection first."""
    replies: list[Response] = []
    with contextlib.suppress(asyncio.IncompleteReadError, ConnectionResetError):
        while len(replies) < most:
            replies.append(await read_response(reader))
    return replies


@contextlib.asynccontextmanager
async def connect(
    server: LiveServer,
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """A plain TCP connection to the server."""
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", server.port), LIMIT_S
    )
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


def raw_socket(server: LiveServer) -> socket.socket:
    """A blocking socket to the server, each call on it limited to `LIMIT_S`."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=LIMIT_S)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


async def assert_serves(server: LiveServer) -> None:
    """A fresh connection gets an ordinary answer."""
    async with connect(server) as (reader, writer):
        writer.write(request("GET", READY))
        reply = await read_response(reader)
    assert reply.status == 200, reply
