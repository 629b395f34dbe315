"""`Crowd`: how many requests have lately been in flight together at one batcher.

Some transports hand requests over one at a time however many clients are waiting: grpcio's
server takes unary calls from its core one after another, so each reaches the batcher alone and,
taken at once by an idle worker, runs the model at batch 1. The batcher cannot see the calls still
waiting inside grpcio, but it sees their trace: requests arrive while others are still in flight.
Each answered request reports how many were in flight at some time during its own flight (itself
included); a worker holding fewer requests than that recent crowd, or than are in flight now,
waits (within `max_queue_delay_us`) for the rest. A lone client never leaves such a trace, since
its next request follows the answer to the last one, so a request that is alone never waits. A
crowd of a few is served once all are in; a large crowd grows its batches, since a request held
longer meets more of the others.
"""

from __future__ import annotations

from dataclasses import dataclass

PEAK_DECAY = 15 / 16  # per answer: a crowd that has left stops counting after a few dozen


@dataclass(slots=True)
class Crowd:
    """The recent peak of requests in flight together (kept under the batcher's lock).

    Attributes:
        peak: the largest number of requests one request was in flight with (itself
            included), fading with each request that met fewer.
    """

    peak: float = 0.0

    def record(self, met: int) -> None:
        """Note one answered request that was in flight with `met` requests, itself included."""
        self.peak = max(float(met), self.peak * PEAK_DECAY)
