"""`KvCache`: the keys and values of one sequence, and packing many into one batched step.

Each sequence owns buffers sized for its whole life (prompt plus `max_tokens`), allocated when
it is admitted, so the scheduler's memory budget is known up front and a running sequence never
grows past it. A step packs the running sequences' caches right-aligned (left padding) into the
batch the graph takes, and appends each sequence's new positions back from the graph's output.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from maas.errors import InvalidInput
from maas.generate.model import FLOAT_BYTES, LmConfig, StepInputs, StepOutputs

PAD_TOKEN = 0  # what padded positions hold; the attention mask hides them
PAD_POSITION = 1  # the position id of a padded slot (any valid position; it is masked out)


class KvCache:
    """Keys and values of one sequence: per layer and kind, a buffer [heads, capacity, dim].

    Args:
        config: the model's cache shape.
        capacity: most positions the sequence may hold (prompt and output together).
    """

    __slots__ = ("buffers", "capacity", "length")

    def __init__(self, config: LmConfig, capacity: int) -> None:
        shape = (config.heads, capacity, config.head_dim)
        self.buffers = tuple(np.empty(shape, dtype=np.float32) for _ in range(2 * config.layers))
        self.capacity = capacity
        self.length = 0

    @property
    def nbytes(self) -> int:
        """Bytes its buffers hold (allocated, not only filled)."""
        return sum(buffer.nbytes for buffer in self.buffers)

    def append(self, present: Sequence[np.ndarray], row: int, start: int, count: int) -> None:
        """Copy `count` positions from `present[*][row, :, start:start + count]` to the end.

        Raises:
            InvalidInput: the sequence would outgrow its capacity (a scheduler bug).
        """
        end = self.length + count
        if end > self.capacity:
            raise InvalidInput(f"KV cache of {self.capacity} positions cannot take {end}")
        for buffer, array in zip(self.buffers, present, strict=True):
            buffer[:, self.length : end, :] = array[row, :, start : start + count, :]
        self.length = end


def cache_bytes(config: LmConfig, positions: int) -> int:
    """Bytes a cache of `positions` positions takes."""
    return 2 * config.layers * config.heads * positions * config.head_dim * FLOAT_BYTES


@dataclass(frozen=True, slots=True)
class StepRow:
    """One sequence's part of a step: its cache so far and the tokens it feeds now."""

    cache: KvCache
    new_ids: Sequence[int]


def pack_step(rows: Sequence[StepRow], config: LmConfig) -> StepInputs:
    """The batched inputs of one step: pasts right-aligned to the longest, new tokens likewise.

    Row i is `[pad, past_i, pad, new_i]`; the attention mask is 1 exactly on past_i and new_i
    and position ids continue each sequence's own count.
    """
    batch = len(rows)
    past = max(row.cache.length for row in rows)
    seq = max(len(row.new_ids) for row in rows)
    input_ids = np.full((batch, seq), PAD_TOKEN, dtype=np.int64)
    position_ids = np.full((batch, seq), PAD_POSITION, dtype=np.int64)
    mask = np.zeros((batch, past + seq), dtype=np.int64)
    shape = (batch, config.heads, past, config.head_dim)
    arrays = tuple(np.zeros(shape, dtype=np.float32) for _ in range(2 * config.layers))
    for i, row in enumerate(rows):
        length, count = row.cache.length, len(row.new_ids)
        input_ids[i, seq - count :] = row.new_ids
        position_ids[i, seq - count :] = np.arange(length, length + count)
        mask[i, past - length : past] = 1
        mask[i, past + seq - count :] = 1
        for array, buffer in zip(arrays, row.cache.buffers, strict=True):
            array[i, :, past - length :, :] = buffer[:, :length, :]
    return StepInputs(input_ids, mask, position_ids, arrays)


def unpack_step(rows: Sequence[StepRow], outputs: StepOutputs) -> None:
    """Append each row's new positions from the step's output to its cache.

    Raises:
        InvalidInput: the output does not have one row per sequence.
    """
    present = outputs.present
    if outputs.last_logits.shape[0] != len(rows) or any(p.shape[0] != len(rows) for p in present):
        raise InvalidInput(f"the model answered a batch of {len(rows)} with another row count")
    total = present[0].shape[2]
    for i, row in enumerate(rows):
        count = len(row.new_ids)
        row.cache.append(present, i, total - count, count)
