"""answer_stream on its own: the in-flight bound and what a failing request gets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from maas.errors import ModelNotFound
from maas.protocol.proto import grpc_service_pb2 as pb
from maas.serving.grpc.stream import answer_stream


async def requests_of(count: int) -> AsyncIterator[pb.ModelInferRequest]:
    for i in range(count):
        yield pb.ModelInferRequest(model_name="m", id=str(i))


async def test_no_more_than_max_in_flight_are_answered_at_once() -> None:
    busy = 0
    most = 0

    async def infer(request: pb.ModelInferRequest) -> pb.ModelInferResponse:
        nonlocal busy, most
        busy += 1
        most = max(most, busy)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        busy -= 1
        return pb.ModelInferResponse(id=request.id)

    responses = [r async for r in answer_stream(requests_of(20), infer, str, max_in_flight=3)]
    assert sorted(int(r.infer_response.id) for r in responses) == list(range(20))
    assert most == 3


async def test_failures_keep_their_id_and_message() -> None:
    async def infer(request: pb.ModelInferRequest) -> pb.ModelInferResponse:
        if request.id == "1":
            raise ModelNotFound("no model 'm'")
        if request.id == "2":
            raise RuntimeError("boom")
        return pb.ModelInferResponse(id=request.id)

    def on_bug(err: Exception) -> str:
        return f"internal error ({type(err).__name__})"

    responses = {
        r.infer_response.id: r.error_message
        async for r in answer_stream(requests_of(3), infer, on_bug)
    }
    assert responses == {"0": "", "1": "no model 'm'", "2": "internal error (RuntimeError)"}
