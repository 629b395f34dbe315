"""`RequestDeadline`: the REST request timeout as one timer handle per request.

The timer cancels the request's task when it fires before the answer starts. The app reports
two moments: the body was read (a later timeout is the server's: 504, not 408) and the answer
started (the timer stops, so a large body can finish going out). `RestApp` reports them through
the deadline it finds in the ASGI scope; any other app gets wrapped `receive` and `send`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

DEADLINE_SCOPE_KEY = "maas.deadline"  # where the guard leaves the deadline in the ASGI scope


class RequestDeadline:
    """The timeout of one request running in `task`.

    Args:
        task: the task answering the request; cancelled when the deadline passes.
        body_done: True when the request has no body to wait for.
    """

    __slots__ = ("_handle", "_task", "body_done", "cancelling", "is_expired", "is_started")

    def __init__(self, task: asyncio.Task[Any], body_done: bool) -> None:
        self._task = task
        self._handle: asyncio.TimerHandle | None = None
        self.body_done = body_done
        self.is_started = False
        self.is_expired = False
        self.cancelling = task.cancelling()  # cancellations pending before ours

    def start(self, timeout_s: float) -> None:
        """Arm the timer: `timeout_s` from now the task is cancelled unless answering."""
        self._handle = asyncio.get_running_loop().call_later(timeout_s, self._expire)

    def stop(self) -> None:
        """Disarm the timer (the request finished or is answering)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def body_read(self) -> None:
        """The whole request body arrived."""
        self.body_done = True

    def answering(self) -> None:
        """The answer starts going out: the deadline no longer applies."""
        self.is_started = True
        self.stop()

    def tracked(self, receive: Receive, send: Send) -> tuple[Receive, Send]:
        """`receive` and `send` that report the body's end and the answer's start."""

        async def tracked_receive() -> Message:
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                self.body_done = True
            return message

        async def tracked_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.answering()
            await send(message)

        return tracked_receive, tracked_send

    def _expire(self) -> None:
        self._handle = None
        if self.is_started:
            return
        self.is_expired = True
        self._task.cancel()
