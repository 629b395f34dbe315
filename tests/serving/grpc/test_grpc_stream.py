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


async def test_answers_the_client_has_not_taken_hold_their_slots() -> None:
    """A client that sends without reading cannot make answers pile up: reading stops."""
    pulled = 0

    async def requests() -> AsyncIterator[pb.ModelInferRequest]:
        nonlocal pulled
        for i in range(100):
            pulled += 1
            yield pb.ModelInferRequest(model_name="m", id=str(i))

    async def infer(request: pb.ModelInferRequest) -> pb.ModelInferResponse:
        return pb.ModelInferResponse(id=request.id)

    stream = answer_stream(requests(), infer, str, max_in_flight=3)
    first = await anext(stream)
    for _ in range(50):  # plenty of turns for the reader, had it room to go on
        await asyncio.sleep(0)
    assert pulled <= 4  # three answers held, one request waiting for a slot
    rest = [r async for r in stream]
    assert sorted(int(r.infer_response.id) for r in [first, *rest]) == list(range(100))
