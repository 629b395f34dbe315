"""Greedy decoding of one prompt through a causal LM graph with a key/value cache (numpy only).

The graph follows the generative-version interface: feeds `input_ids`, `attention_mask`,
`position_ids` and `past_key_values.{i}.key/value`; fetches `logits` and `present.{i}.key/value`.
The first call (prefill) runs the whole prompt with an empty cache; each later call runs one token
against the cache the previous call returned.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

Array = np.ndarray[Any, Any]


class InferenceSession(Protocol):
    """What decoding needs of an onnxruntime session."""

    def run(self, output_names: list[str] | None, input_feed: Mapping[str, Array]) -> list[Any]:
        """Run the graph; outputs in the order `output_names` gives (all when None)."""


@dataclass(frozen=True)
class CacheShape:
    """The cache layout of a graph: layers, heads per layer and the size of each head."""

    layers: int
    heads: int
    head_dim: int

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> CacheShape:
        """Read `layers`, `heads` and `head_dim` from a version's generation config."""
        return cls(int(config["layers"]), int(config["heads"]), int(config["head_dim"]))

    def empty(self, batch: int) -> dict[str, Array]:
        """An empty cache (past length 0) for `batch` sequences, as graph feeds."""
        shape = (batch, self.heads, 0, self.head_dim)
        return {
            f"past_key_values.{i}.{kind}": np.zeros(shape, dtype=np.float32)
            for i in range(self.layers)
            for kind in ("key", "value")
        }

    def output_names(self) -> list[str]:
        """The outputs to fetch: logits, then the present key and value of every layer."""
        present = [f"present.{i}.{k}" for i in range(self.layers) for k in ("key", "value")]
        return ["logits", *present]

    def next_past(self, presents: Sequence[Array]) -> dict[str, Array]:
        """The presents one call returned, as the past feeds of the next call."""
        names = self.output_names()[1:]
        return {
            name.replace("present.", "past_key_values.", 1): value
            for name, value in zip(names, presents, strict=True)
        }


def greedy_generate(
    session: InferenceSession,
    prompt_ids: Sequence[int],
    *,
    cache: CacheShape,
    max_new_tokens: int,
    eos_token_id: int | None,
    context: int,
) -> list[int]:
    """The tokens greedy decoding appends to `prompt_ids` (the end token included, if reached).

    Stops after `max_new_tokens`, at `eos_token_id`, or when prompt and new tokens fill
    `context` (every token then has a position the model knows).

    Raises:
        ValueError: the prompt is empty or does not fit in `context`.
    """
    if not prompt_ids or len(prompt_ids) >= context:
        raise ValueError(f"a prompt needs 1 to {context - 1} tokens, got {len(prompt_ids)}")
    total = len(prompt_ids)
    feeds: dict[str, Array] = {
        "input_ids": np.asarray([list(prompt_ids)], dtype=np.int64),
        "attention_mask": np.ones((1, total), dtype=np.int64),
        "position_ids": np.arange(total, dtype=np.int64)[None, :],
        **cache.empty(1),
    }
    generated: list[int] = []
    while len(generated) < max_new_tokens and total < context:
        logits, *presents = session.run(cache.output_names(), feeds)
        token = int(np.argmax(logits[0, -1]))
        generated.append(token)
        total += 1
        if token == eos_token_id:
            break
        feeds = {
            "input_ids": np.asarray([[token]], dtype=np.int64),
            "attention_mask": np.ones((1, total), dtype=np.int64),
            "position_ids": np.asarray([[total - 1]], dtype=np.int64),
            **cache.next_past(presents),
        }
    return generated
