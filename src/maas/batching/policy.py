"""`BatchPolicy`: the sizes, delays and limits of one model version's batcher."""

from __future__ import annotations

from dataclasses import dataclass

from maas.errors import InvalidInput

MAX_BATCH_LIMIT = 4096  # beyond this one request's memory outgrows any latency win
MAX_DELAY_LIMIT_US = 1_000_000  # a window over a second is a misconfiguration, not a policy
# A batch waits only while more requests are in flight (see `Batcher`), so the window can be long
# enough to gather calls that a transport hands over one at a time (gRPC unary: one every few
# hundred µs of event-loop time) without delaying a request that is alone.
DEFAULT_QUEUE_DELAY_US = 5_000


@dataclass(frozen=True)
class BatchPolicy:
    """How requests for one loaded version are queued, merged and run.

    Attributes:
        max_batch_size: most rows in one run of the model (1 turns batching off).
        max_queue_delay_us: longest a partly filled batch waits to grow toward a preferred size,
            and only while the workers' batches hold fewer requests than are in flight now or
            were lately in flight together; a request that is alone never waits.
        preferred_batch_sizes: sizes worth waiting for; empty means `max_batch_size`.
        instances: model sessions, each with its own worker thread.
        intra_op_threads: threads onnxruntime uses inside one operator of one instance.
        max_queue_size: requests that may wait; one more is refused at once (503).
    """

    max_batch_size: int = 32
    max_queue_delay_us: int = DEFAULT_QUEUE_DELAY_US
    preferred_batch_sizes: tuple[int, ...] = ()
    instances: int = 1
    intra_op_threads: int = 1
    max_queue_size: int = 1024

    def __post_init__(self) -> None:
        _check_range("max_batch_size", self.max_batch_size, 1, MAX_BATCH_LIMIT)
        _check_range("max_queue_delay_us", self.max_queue_delay_us, 0, MAX_DELAY_LIMIT_US)
        _check_range("instances", self.instances, 1, 256)
        _check_range("intra_op_threads", self.intra_op_threads, 1, 256)
        _check_range("max_queue_size", self.max_queue_size, 1, 10_000_000)
        for size in self.preferred_batch_sizes:
            _check_range("preferred_batch_sizes", size, 1, self.max_batch_size)
        if list(self.preferred_batch_sizes) != sorted(set(self.preferred_batch_sizes)):
            raise InvalidInput(
                "preferred_batch_sizes must be increasing without repeats, "
                f"got {list(self.preferred_batch_sizes)}"
            )

    def target_size(self, rows: int) -> int:
        """The batch size worth topping up to from `rows`: the next preferred size, else the max."""
        for size in self.preferred_batch_sizes:
            if size >= rows:
                return size
        return self.max_batch_size


def _check_range(name: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise InvalidInput(f"{name} must be between {low} and {high}, got {value}")
