"""Limits on real servers: a 50/s key under a burst of 500, per-model limits, deadlines."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import httpx
import pytest
from secure_helpers import (
    INFER_BODY,
    Keys,
    Served,
    grpc_infer_request,
    guard_for,
    start_served,
    stop_served,
)

from maas.config import ServeSettings, load_serve_file, load_settings
from maas.errors import InvalidInput
from maas.protocol.proto import grpc_service_pb2 as pb
from maas.protocol.proto import grpc_service_pb2_grpc as pb_grpc
from maas.registry.store import Registry
from maas.security.auth import Authenticator
from maas.security.guard import Guard
from maas.security.keys import KeyStore
from maas.security.ratelimit import RateLimit, RedisRateLimiter
from maas.serving.protection import ModelLimits, Protection

BURST = 500
REDIS_URL = "redis://127.0.0.1:6379/0"  # the Redis every test machine runs


@pytest.mark.slow
async def test_a_burst_of_500_on_a_50_per_second_key_over_rest(secured: Served, keys: Keys) -> None:
    limits = httpx.Limits(max_connections=50)
    async with httpx.AsyncClient(base_url=secured.http_url, timeout=30, limits=limits) as client:

        async def infer(key: str) -> httpx.Response:
            return await client.post(
                "/v2/models/digits/infer",
                json=INFER_BODY,
                headers={"Authorization": keys.bearer(key)},
            )

        burst = [asyncio.create_task(infer("limited")) for _ in range(BURST)]
        others = [await infer("other") for _ in range(10)]  # another key, meanwhile
        replies = await asyncio.gather(*burst)
    statuses = Counter(reply.status_code for reply in replies)
    assert set(statuses) == {200, 429}
    assert statuses[200] >= 50  # the bucket's 50, and what refilled during the burst
    assert statuses[429] >= 1
    refused = [reply for reply in replies if reply.status_code == 429]
    assert all(int(reply.headers["retry-after"]) >= 1 for reply in refused)
    assert "rate limit of 5/s,burst=50 exceeded" in refused[0].json()["error"]
    assert [reply.status_code for reply in others] == [200] * 10


async def test_a_burst_of_500_on_a_50_per_second_key_over_grpc(secured: Served, keys: Keys) -> None:
    metadata = (("authorization", keys.bearer("limited")),)
    other = (("authorization", keys.bearer("other")),)
    async with grpc.aio.insecure_channel(secured.grpc_address) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)

        async def infer(meta: tuple[tuple[str, str], ...]) -> tuple[str, str | None]:
            call = stub.ModelInfer(grpc_infer_request("digits"), metadata=meta)
            try:
                await call
            except grpc.aio.AioRpcError as err:
                trailing = dict(err.trailing_metadata() or ())
                return err.code().name, trailing.get("retry-after")
            return "OK", None

        burst = [asyncio.create_task(infer(metadata)) for _ in range(BURST)]
        others = [await infer(other) for _ in range(10)]
        outcomes = await asyncio.gather(*burst)
    codes = Counter(code for code, _ in outcomes)
    assert set(codes) == {"OK", "RESOURCE_EXHAUSTED"}
    assert codes["OK"] >= 50
    retry = [after for code, after in outcomes if code == "RESOURCE_EXHAUSTED"]
    assert all(after is not None and int(after) >= 1 for after in retry)
    assert others == [("OK", None)] * 10


async def test_a_stream_is_paced_to_its_key_limit(secured: Served, keys: Keys) -> None:
    metadata = (("authorization", keys.bearer("limited")),)
    async with grpc.aio.insecure_channel(secured.grpc_address) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        answers = [
            r
            async for r in stub.ModelStreamInfer(
                iter([grpc_infer_request("digits")] * 60), metadata=metadata
            )
        ]
    assert len(answers) == 60  # over the bucket's 50: the stream waited, nothing was refused
    assert {a.error_message for a in answers} == {""}


async def test_per_model_rate_and_size_limits(
    secure_registry: Registry, keys: Keys, tmp_path: Path
) -> None:
    serve_file = tmp_path / "serve.yaml"
    serve_file.write_text(
        "models:\n  iris: {rate_limit: 2/s, max_request_bytes: 2048}\n  digits: {}\n"
    )
    doc = load_serve_file(serve_file)
    protection = Protection(
        guard=guard_for(secure_registry),
        model_limits={name: ModelLimits.from_config(e) for name, e in doc.models.items()},
    )
    assert protection.limits_for("iris") == ModelLimits(RateLimit(2.0), 2048)
    served = await start_served(secure_registry, protection)
    try:
        async with httpx.AsyncClient(base_url=served.http_url, timeout=10) as client:
            auth = {"Authorization": keys.bearer("admin")}
            iris = [
                (await client.post("/v2/models/iris/infer", json=INFER_BODY, headers=auth))
                for _ in range(5)
            ]
            digits = [
                (await client.post("/v2/models/digits/infer", json=INFER_BODY, headers=auth))
                for _ in range(5)
            ]
            big = {**INFER_BODY, "parameters": {"pad": "x" * 4096}}
            fresh = {"Authorization": keys.bearer("other")}  # iris's 2/s counts per caller
            too_big = await client.post("/v2/models/iris/infer", json=big, headers=fresh)
            big_elsewhere = await client.post("/v2/models/digits/infer", json=big, headers=fresh)
        async with grpc.aio.insecure_channel(served.grpc_address) as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            request = grpc_infer_request("iris")
            request.parameters["pad"].string_param = "x" * 4096
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.ModelInfer(
                    request, metadata=(("authorization", keys.bearer("limited")),)
                )
    finally:
        await stop_served(served)
    assert [r.status_code for r in iris][:2] == [200, 200]
    assert 429 in [r.status_code for r in iris]
    assert [r.status_code for r in digits] == [200] * 5
    assert too_big.status_code == 413
    assert big_elsewhere.status_code == 200
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "limit of 2048" in (refused.value.details() or "")


async def test_a_grpc_deadline_is_honoured(secured: Served, keys: Keys) -> None:
    metadata = (("authorization", keys.bearer("digits")),)
    async with grpc.aio.insecure_channel(secured.grpc_address) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        ok = await stub.ModelInfer(grpc_infer_request("digits"), metadata=metadata, timeout=30)
        call = stub.ModelInfer(grpc_infer_request("digits"), metadata=metadata, timeout=1e-3)
        # The server runs on this event loop: blocking it makes sure the deadline passes before
        # the server can answer (a fast machine answers within gRPC's 1 ms deadline granularity).
        time.sleep(0.05)
        with pytest.raises(grpc.aio.AioRpcError) as late:
            await call
    assert ok.model_name == "digits"
    assert late.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


@pytest.mark.slow
async def test_a_slow_rest_body_gets_408(secure_registry: Registry, keys: Keys) -> None:
    served = await start_served(
        secure_registry, Protection(guard=guard_for(secure_registry)), request_timeout_s=0.5
    )
    try:
        async with httpx.AsyncClient(base_url=served.http_url, timeout=10) as client:

            async def trickle() -> AsyncIterator[bytes]:
                for _ in range(20):
                    yield b" "
                    await asyncio.sleep(0.1)

            reply = await client.post(
                "/v2/models/digits/infer",
                content=trickle(),
                headers={"Authorization": keys.bearer("digits")},
            )
    finally:
        await stop_served(served)
    assert reply.status_code == 408
    assert reply.json()["error"] == "the request body did not arrive within 0.5 s"


def test_protection_follows_the_settings_and_serve_file(
    secure_registry: Registry, keys: Keys, tmp_path: Path
) -> None:
    serve_file = tmp_path / "serve.yaml"
    serve_file.write_text(
        "defaults: {rate_limit: 100/s}\n"
        "models:\n  iris: {rate_limit: '10/s,burst=20', max_request_bytes: 4096}\n  digits: {}\n"
    )
    settings = load_settings(
        home=tmp_path, serve=ServeSettings(config=serve_file, max_connections=5)
    )
    protection = Protection.from_settings(settings, secure_registry)
    assert protection.limits_for("iris") == ModelLimits(RateLimit(10.0, 20), 4096)
    assert protection.limits_for("digits") == ModelLimits(RateLimit(100.0), None)
    assert protection.limits_for("unlisted") == ModelLimits(RateLimit(100.0), None)
    assert protection.max_connections == 5
    assert protection.tls is None
    assert protection.guard is not None
    assert protection.guard.authenticator.is_enabled  # the fixture's keys exist
    serve_file.write_text("models:\n  iris: {rate_limit: fast}\n")
    with pytest.raises(InvalidInput, match="invalid rate limit 'fast'"):
        Protection.from_settings(settings, secure_registry)


async def test_two_servers_share_a_key_limit_through_redis(
    secure_registry: Registry, tmp_path: Path
) -> None:
    import redis

    token = KeyStore(secure_registry).create("shared", ["infer:*"], RateLimit(0.001, burst=6)).token
    prefix = f"maas-test:{uuid.uuid4().hex}:"
    replicas = [
        await start_served(
            secure_registry,
            Protection(
                guard=Guard(
                    Authenticator(KeyStore(secure_registry)), RedisRateLimiter(REDIS_URL, prefix)
                )
            ),
        )
        for _ in range(2)
    ]
    try:
        statuses = []
        async with httpx.AsyncClient(timeout=10) as client:
            for n in range(12):
                served = replicas[n % 2]
                reply = await client.post(
                    f"{served.http_url}/v2/models/digits/infer",
                    json=INFER_BODY,
                    headers={"Authorization": f"Bearer {token}"},
                )
                statuses.append(reply.status_code)
        async with grpc.aio.insecure_channel(replicas[1].grpc_address) as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.ModelInfer(
                    grpc_infer_request("digits"), metadata=(("authorization", f"Bearer {token}"),)
                )
    finally:
        for served in replicas:
            await stop_served(served)
        store = redis.Redis.from_url(REDIS_URL)
        for key in store.scan_iter(match=prefix + "*"):
            store.delete(key)
        store.close()
    assert statuses.count(200) == 6  # one bucket of 6 for both servers, not 6 each
    assert statuses.count(429) == 6
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_the_connection_cap_refuses_what_is_over_it(
    secure_registry: Registry, keys: Keys
) -> None:
    protection = Protection(guard=guard_for(secure_registry), max_connections=1)
    served = await start_served(secure_registry, protection)
    auth = keys.bearer("admin")
    try:
        host, port = "127.0.0.1", served.server.http_port
        _, writer = await asyncio.open_connection(host, port)
        writer.write(  # a request whose body never completes holds the one slot
            f"POST /v2/models/digits/infer HTTP/1.1\r\nHost: maas\r\nAuthorization: {auth}\r\n"
            "Content-Length: 1000\r\n\r\n{".encode()
        )
        await writer.drain()
        async with httpx.AsyncClient(timeout=10) as client:
            over = await client.get(f"http://{host}:{port}/v2/health/live")
            for _ in range(50):  # until the server has taken the held request up
                if over.status_code == 503:
                    break
                await asyncio.sleep(0.1)
                over = await client.get(f"http://{host}:{port}/v2/health/live")
        writer.close()
        async with grpc.aio.insecure_channel(served.grpc_address) as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            metadata = (("authorization", auth),)
            requests: asyncio.Queue[pb.ModelInferRequest | None] = asyncio.Queue()

            async def feed() -> AsyncIterator[pb.ModelInferRequest]:
                while (item := await requests.get()) is not None:
                    yield item

            stream = stub.ModelStreamInfer(feed(), metadata=metadata)  # holds the one call slot
            await requests.put(grpc_infer_request("digits"))
            first = await stream.read()
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.ModelInfer(grpc_infer_request("digits"), metadata=metadata)
            await requests.put(None)
            stream.cancel()
    finally:
        await stop_served(served)
    assert over.status_code == 503
    assert first.infer_response.model_name == "digits"
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
