"""A barrage of bad requests against a live server: malformed JSON, wrong types, huge shapes,
negative dimensions, mismatched binary lengths, NaN/Inf, deep nesting, slow and short bodies.
Every answer is a 4xx, the server stays up, and its memory stays bounded."""

from __future__ import annotations

import asyncio
import json
import socket
import struct
from collections import Counter

import httpx
import pytest
from hardening_helpers import MAX_REQUEST_BYTES, REQUEST_TIMEOUT_S, LiveServer

INFER = "/v2/models/digits/infer"
GOOD_INPUT = {"name": "input", "datatype": "FP32", "shape": [1, 4], "data": [0.1, 0.2, 0.3, 0.4]}


def body(*inputs: object, **extra: object) -> bytes:
    return json.dumps({"inputs": list(inputs), **extra}).encode()


def tensor(**changes: object) -> dict[str, object]:
    return {**GOOD_INPUT, **changes}


def binary_body(declared: int, given: int) -> tuple[bytes, dict[str, str]]:
    """An FP32 [1, 4] input declaring `declared` bytes of binary data, followed by `given`."""
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "input",
                    "datatype": "FP32",
                    "shape": [1, 4],
                    "parameters": {"binary_data_size": declared},
                }
            ]
        }
    ).encode()
    raw = struct.pack("<4f", 1.0, 2.0, 3.0, 4.0) * 2
    return header + raw[:given], {"Inference-Header-Content-Length": str(len(header))}


# (label, path, body, extra headers): each must get a 4xx.
BAD_REQUESTS: list[tuple[str, str, bytes, dict[str, str]]] = [
    ("truncated JSON", INFER, b'{"inputs": [', {}),
    ("not JSON", INFER, b"hello", {}),
    ("invalid UTF-8", INFER, b'{"inputs": "\xff\xfe"}', {}),
    ("a JSON list", INFER, b"[]", {}),
    ("JSON null", INFER, b"null", {}),
    ("empty body", INFER, b"", {}),
    ("inputs not a list", INFER, b'{"inputs": 5}', {}),
    ("no inputs", INFER, body(), {}),
    ("name missing", INFER, body({"datatype": "FP32", "shape": [1, 4], "data": [1]}), {}),
    ("name a number", INFER, body(tensor(name=7)), {}),
    ("datatype a list", INFER, body(tensor(datatype=["FP32"])), {}),
    ("unknown datatype", INFER, body(tensor(datatype="FP128")), {}),
    ("shape a string", INFER, body(tensor(shape="1,4")), {}),
    ("shape of floats", INFER, body(tensor(shape=[1.5, 4])), {}),
    ("shape of bools", INFER, body(tensor(shape=[True, 4])), {}),
    ("data a string", INFER, body(tensor(data="0.1,0.2")), {}),
    ("data of strings", INFER, body(tensor(data=["a", "b", "c", "d"])), {}),
    ("data of objects", INFER, body(tensor(data=[{}, {}, {}, {}])), {}),
    ("ragged data", INFER, body(tensor(data=[[1, 2], [3]])), {}),
    ("wrong element count", INFER, body(tensor(data=[1.0, 2.0])), {}),
    ("huge shape", INFER, body(tensor(shape=[2**62, 2**62])), {}),
    ("huge batch", INFER, body(tensor(shape=[10**9, 4])), {}),
    ("too many dims", INFER, body(tensor(shape=[1] * 64)), {}),
    ("negative dimension", INFER, body(tensor(shape=[-1, 4])), {}),
    ("zero rows", INFER, body(tensor(shape=[0, 4], data=[])), {}),
    ("64-bit overflow", INFER, body(tensor(datatype="INT64", data=[2**70, 1, 1, 1])), {}),
    (
        "NaN token",
        INFER,
        b'{"inputs":[{"name":"input","datatype":"FP32","shape":[1,4],"data":[NaN,1,2,3]}]}',
        {},
    ),
    (
        "Infinity token",
        INFER,
        b'{"inputs":[{"name":"input","datatype":"FP32","shape":[1,4],'
        b'"data":[Infinity,-Infinity,1,2]}]}',
        {},
    ),
    (
        "number overflow",
        INFER,
        b'{"inputs":[{"name":"input","datatype":"FP32","shape":[1,4],"data":[1e999,1,2,3]}]}',
        {},
    ),
    ("deeply nested JSON", INFER, b"[" * 100_000 + b"]" * 100_000, {}),
    ("deeply nested data", INFER, body(tensor(data=json.loads("[" * 900 + "1" + "]" * 900))), {}),
    (
        "deep parameters",
        INFER,
        b'{"inputs":[],"parameters":' + b'{"a":' * 2000 + b"1" + b"}" * 2001,
        {},
    ),
    (
        "binary: header length past the body",
        INFER,
        b"{}",
        {"Inference-Header-Content-Length": "99"},
    ),
    ("binary: header length negative", INFER, b"{}", {"Inference-Header-Content-Length": "-1"}),
    ("binary: header length text", INFER, b"{}", {"Inference-Header-Content-Length": "ten"}),
    ("binary: too few bytes", INFER, *binary_body(16, 8)),
    ("binary: too many bytes", INFER, *binary_body(16, 32)),
    ("binary: size mismatching the shape", INFER, *binary_body(8, 8)),
    ("binary: negative size", INFER, *binary_body(-4, 0)),
    ("bad output request", INFER, body(GOOD_INPUT, outputs=[{"name": 3}]), {}),
    ("unknown output", INFER, body(GOOD_INPUT, outputs=[{"name": "nope"}]), {}),
    (
        "classification not a number",
        INFER,
        body(
            GOOD_INPUT, outputs=[{"name": "probabilities", "parameters": {"classification": "x"}}]
        ),
        {},
    ),
    ("timeout parameter negative", INFER, body(GOOD_INPUT, parameters={"timeout": -5}), {}),
    ("id a number", INFER, body(GOOD_INPUT, id=5), {}),
    ("unknown model", "/v2/models/nope/infer", body(GOOD_INPUT), {}),
    ("unknown version", "/v2/models/digits/versions/99/infer", body(GOOD_INPUT), {}),
    ("version not a number", "/v2/models/digits/versions/x%00y/infer", body(GOOD_INPUT), {}),
    ("over the size limit", INFER, b" " * (MAX_REQUEST_BYTES + 1), {}),
    ("TF Serving: bad body", "/v1/models/digits:predict", b'{"instances": "x"}', {}),
    ("TorchServe: bad body", "/predictions/digits", b"[[1, 2]", {}),
    ("SageMaker: bad body", "/invocations", b'{"instances": [[1, "a", 3, 4]]}', {}),
]


async def send_all(
    server: LiveServer, requests: list[tuple[str, str, bytes, dict[str, str]]]
) -> list[tuple[str, int]]:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:

        async def one(
            label: str, path: str, content: bytes, headers: dict[str, str]
        ) -> tuple[str, int]:
            try:
                reply = await client.post(path, content=content, headers={**server.auth, **headers})
            except httpx.RemoteProtocolError:
                return label, 400  # the HTTP layer refused to parse it: a client error too
            return label, reply.status_code

        return await asyncio.gather(*(one(*request) for request in requests))


async def test_bad_requests_get_4xx_and_the_server_stays_up(live_server: LiveServer) -> None:
    outcomes = await send_all(live_server, BAD_REQUESTS)
    not_4xx = [(label, status) for label, status in outcomes if not 400 <= status < 500]
    assert not_4xx == []
    statuses = dict(outcomes)
    assert statuses["over the size limit"] == 413
    assert statuses["unknown model"] == 404
    assert statuses["negative dimension"] == 400
    assert live_server.is_alive()
    good = httpx.post(
        f"{live_server.url}{INFER}", content=body(GOOD_INPUT), headers=live_server.auth
    )
    assert good.status_code == 200


def test_nan_and_inf_values_in_binary_data_are_served(live_server: LiveServer) -> None:
    """IEEE specials are valid FP32 values: the model runs on them; nothing crashes."""
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "input",
                    "datatype": "FP32",
                    "shape": [1, 4],
                    "parameters": {"binary_data_size": 16},
                }
            ]
        }
    ).encode()
    raw = struct.pack("<4f", float("nan"), float("inf"), float("-inf"), 0.0)
    reply = httpx.post(
        f"{live_server.url}{INFER}",
        content=header + raw,
        headers={**live_server.auth, "Inference-Header-Content-Length": str(len(header))},
    )
    assert reply.status_code == 200
    assert reply.json()["model_name"] == "digits"


def raw_exchange(server: LiveServer, head: bytes, chunks: list[bytes], pause_s: float) -> bytes:
    """Send `head`, then each chunk `pause_s` apart (stopping once the server answers); return
    everything the server sent until it closed the connection."""
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=REQUEST_TIMEOUT_S * 5) as sock:
        answer = b""
        try:
            sock.sendall(head)
            for chunk in chunks:
                sock.sendall(chunk)
                sock.settimeout(pause_s)
                try:
                    answer = sock.recv(65536)
                except TimeoutError:
                    continue
                break  # answered before the body was complete
        except (BrokenPipeError, ConnectionResetError):
            pass
        sock.settimeout(REQUEST_TIMEOUT_S * 5)
        while part := sock.recv(65536):
            answer += part
        return answer


def request_head(server: LiveServer, length: int) -> bytes:
    return (
        f"POST {INFER} HTTP/1.1\r\nHost: maas\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {server.token}\r\n"
        f"Content-Length: {length}\r\nConnection: close\r\n\r\n"
    ).encode()


@pytest.mark.slow
async def test_slow_and_short_bodies_get_408_while_others_are_served(
    live_server: LiveServer,
) -> None:
    content = body(GOOD_INPUT)
    slow = asyncio.to_thread(
        raw_exchange,
        live_server,
        request_head(live_server, len(content)),
        [bytes([b]) for b in content],
        0.2,
    )
    short = asyncio.to_thread(  # declares more than it sends, then waits
        raw_exchange, live_server, request_head(live_server, len(content) + 100) + content, [], 0
    )
    slow_task, short_task = asyncio.create_task(slow), asyncio.create_task(short)
    served = []
    async with httpx.AsyncClient(base_url=live_server.url, timeout=10) as client:
        while not (slow_task.done() and short_task.done()):
            reply = await client.post(INFER, content=content, headers=live_server.auth)
            served.append(reply.status_code)
            await asyncio.sleep(0.2)
    for answer in (await slow_task, await short_task):
        assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
        assert b"did not arrive within" in answer
    assert served
    assert set(served) == {200}  # everyone else kept being served meanwhile
    assert live_server.is_alive()


@pytest.mark.slow
async def test_memory_stays_bounded_under_1000_bad_requests(live_server: LiveServer) -> None:
    barrage = [r for r in BAD_REQUESTS if r[0] not in ("over the size limit", "deeply nested JSON")]
    rounds = -(-1000 // len(barrage))
    await send_all(live_server, barrage * 3)  # warm up allocators and caches
    before_kib = live_server.rss_kib()
    outcomes: Counter[int] = Counter()
    for _ in range(rounds):
        outcomes.update(status for _, status in await send_all(live_server, barrage))
    after_kib = live_server.rss_kib()
    assert sum(outcomes.values()) >= 1000
    assert all(400 <= status < 500 for status in outcomes)
    assert after_kib <= before_kib * 1.2, (before_kib, after_kib)
    assert live_server.is_alive()
