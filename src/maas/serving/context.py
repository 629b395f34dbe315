"""`RequestContext`: what a front end knows about one request, handed down to the data plane.

REST and gRPC each make one per request (its id, its deadline, who is calling and over which
protocol) and pass it to `DataPlane.infer`. Nothing about a request travels through framework
scopes or rewritten client parameters.
"""

from __future__ import annotations

import itertools
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from maas.security.acl import Principal

MAX_REQUEST_ID_CHARS = 128  # longer client ids are replaced, so logs stay readable


@dataclass(slots=True)
class RequestContext:
    """One request as the front end received it.

    Attributes:
        id: the request id (the client's `x-request-id` when usable, else one of ours).
        protocol: `rest` or `grpc`, a metrics label.
        deadline_s: `time.monotonic()` value after which the request is not worth answering.
        principal: the authenticated caller (None when nothing was checked).
    """

    id: str
    protocol: str
    deadline_s: float
    principal: Principal | None = None

    @classmethod
    def starting_now(
        cls, request_id: str, protocol: str, timeout_s: float, principal: Principal | None = None
    ) -> RequestContext:
        """A context whose deadline is `timeout_s` from now."""
        return cls(request_id, protocol, time.monotonic() + timeout_s, principal)

    def remaining_s(self) -> float:
        """Seconds left before the deadline (negative once it passed)."""
        return self.deadline_s - time.monotonic()


class RequestIds:
    """Request ids of one server: the client's own when usable (printable ASCII, at most
    `MAX_REQUEST_ID_CHARS`), else `<random prefix>-<counter>` (cheap, and unique per server)."""

    def __init__(self) -> None:
        self._prefix = os.urandom(4).hex()
        self._count = itertools.count(1)

    def __call__(self, given: str | None) -> str:
        if given and len(given) <= MAX_REQUEST_ID_CHARS and given.isprintable() and given.isascii():
            return given
        return f"{self._prefix}-{next(self._count)}"
