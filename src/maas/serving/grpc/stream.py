"""`ModelStreamInfer`: answer the requests of one stream concurrently, as each finishes.

Responses come back in the order they complete, each carrying its request's `id` (also on
failure), as Triton's clients expect; a failed request gets `error_message` and the stream
goes on. At most `max_in_flight` requests of a stream are being answered or waiting to be sent
at once; the stream reads no further until one of their answers has been handed to the client,
so a client that sends without reading cannot make answers pile up in the server.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

from maas.errors import MaasError
from maas.protocol.proto import grpc_service_pb2 as pb

STREAM_IN_FLIGHT = 64  # per stream; enough to fill the batcher, small enough to bound memory

Infer = Callable[[pb.ModelInferRequest], Awaitable[pb.ModelInferResponse]]
OnBug = Callable[[Exception], str]


async def answer_stream(
    requests: AsyncIterator[pb.ModelInferRequest],
    infer: Infer,
    on_bug: OnBug,
    max_in_flight: int = STREAM_IN_FLIGHT,
) -> AsyncIterator[pb.ModelStreamInferResponse]:
    """Yield one `ModelStreamInferResponse` per request of `requests`, as each is answered.

    Args:
        requests: the client's stream.
        infer: answers one request; a `MaasError` becomes that request's `error_message`.
        on_bug: logs any other exception and returns the message the client gets.
        max_in_flight: requests answered, or answered and not yet sent, at once on this stream.
    """
    answers: asyncio.Queue[pb.ModelStreamInferResponse | None] = asyncio.Queue()
    slots = asyncio.Semaphore(max_in_flight)
    running: set[asyncio.Task[None]] = set()

    async def answer(request: pb.ModelInferRequest) -> None:
        try:
            response = pb.ModelStreamInferResponse(infer_response=await infer(request))
        except MaasError as err:
            response = _failure(request, str(err))
        except Exception as err:
            response = _failure(request, on_bug(err))
        answers.put_nowait(response)  # its slot is freed once the client has it

    async def read() -> None:
        try:
            async for request in requests:
                await slots.acquire()
                task = asyncio.create_task(answer(request))
                running.add(task)
                task.add_done_callback(running.discard)
            while running:
                await asyncio.wait(set(running))
        finally:
            answers.put_nowait(None)

    reader = asyncio.create_task(read())
    try:
        while (response := await answers.get()) is not None:
            yield response
            slots.release()
        await reader  # raises what ended the client's stream, if anything did
    finally:
        for task in (reader, *running):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader


def _failure(request: pb.ModelInferRequest, message: str) -> pb.ModelStreamInferResponse:
    return pb.ModelStreamInferResponse(
        error_message=message,
        infer_response=pb.ModelInferResponse(
            model_name=request.model_name, model_version=request.model_version, id=request.id
        ),
    )
