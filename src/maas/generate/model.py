"""`LmConfig` and `CausalLm`: a decoder-only ONNX model with a KV cache, one step at a time.

The graph follows the Hugging Face "decoder with past" convention: `input_ids`,
`attention_mask` (past + new, 1 = attend, left padding allowed), `position_ids` and
`past_key_values.{i}.key/value` in; `logits` and `present.{i}.key/value` out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from maas.errors import InvalidInput
from maas.runtime.runner import Runner

CAUSAL_LM_KIND = "causal_lm"
FLOAT_BYTES = 4  # the cache is float32
_REQUIRED_INTS = ("context", "eos_token_id", "vocab_size", "layers", "heads", "head_dim")


@dataclass(frozen=True, slots=True)
class LmConfig:
    """What the engine needs to know about a causal LM (its generation config).

    Attributes:
        context: most positions (prompt and output together) the model was trained for.
        eos_token_id: the token that ends a sequence.
        bos_token_id: the token put before every prompt (None: nothing).
        vocab_size: logits per position.
        layers, heads, head_dim: the shape of the KV cache.
        chat_template: a Jinja chat template (None: the engine's default).
    """

    context: int
    eos_token_id: int
    bos_token_id: int | None
    vocab_size: int
    layers: int
    heads: int
    head_dim: int
    chat_template: str | None = None

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> LmConfig:
        """Read and check a generation config (`{"kind": "causal_lm", "context": N, ...}`).

        Raises:
            InvalidInput: a key is missing or not a positive integer, or the kind is not ours.
        """
        if doc.get("kind") != CAUSAL_LM_KIND:
            raise InvalidInput(f"generation config kind must be {CAUSAL_LM_KIND!r}")
        values: dict[str, int] = {}
        for key in _REQUIRED_INTS:
            value = doc.get(key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidInput(f"generation config {key!r} must be an integer >= 0")
            values[key] = value
        bos = doc.get("bos_token_id")
        if bos is not None and (isinstance(bos, bool) or not isinstance(bos, int)):
            raise InvalidInput("generation config 'bos_token_id' must be an integer or null")
        template = doc.get("chat_template")
        if template is not None and not isinstance(template, str):
            raise InvalidInput("generation config 'chat_template' must be a string")
        return cls(bos_token_id=bos, chat_template=template, **values)

    @property
    def bytes_per_token(self) -> int:
        """KV-cache bytes one position of one sequence takes (keys and values, every layer)."""
        return 2 * self.layers * self.heads * self.head_dim * FLOAT_BYTES


@dataclass(frozen=True, slots=True)
class StepInputs:
    """One run of the model over a batch (left-padded)."""

    input_ids: np.ndarray  # int64 [batch, seq]
    attention_mask: np.ndarray  # int64 [batch, past + seq]
    position_ids: np.ndarray  # int64 [batch, seq]
    past: tuple[np.ndarray, ...]  # per layer: key, value; float32 [batch, heads, past, dim]


@dataclass(frozen=True, slots=True)
class StepOutputs:
    """What one run gave: the last position's logits and the new cache of the whole batch."""

    last_logits: np.ndarray  # float32 [batch, vocab]
    present: tuple[np.ndarray, ...]  # per layer: key, value; [batch, heads, past + seq, dim]


class StepModel(Protocol):
    """What the scheduler needs from a model: one batched step."""

    @property
    def config(self) -> LmConfig: ...

    def step(self, inputs: StepInputs) -> StepOutputs:
        """Run the model once over a batch."""
        ...


class CausalLm:
    """A loaded causal LM on an onnxruntime runner.

    Args:
        runner: a loaded runner over the ONNX graph.
        config: its generation config.
    """

    def __init__(self, runner: Runner, config: LmConfig) -> None:
        self._runner = runner
        self._config = config
        self._past_names = tuple(
            f"past_key_values.{i}.{kind}" for i in range(config.layers) for kind in ("key", "value")
        )
        self._present_names = tuple(
            f"present.{i}.{kind}" for i in range(config.layers) for kind in ("key", "value")
        )

    @property
    def config(self) -> LmConfig:
        return self._config

    def step(self, inputs: StepInputs) -> StepOutputs:
        """Run the graph once (on the calling thread; the scheduler's worker)."""
        feed = {
            "input_ids": inputs.input_ids,
            "attention_mask": inputs.attention_mask,
            "position_ids": inputs.position_ids,
        }
        feed.update(zip(self._past_names, inputs.past, strict=True))
        outputs = self._runner.infer(feed)
        logits = outputs["logits"]
        present = tuple(outputs[name] for name in self._present_names)
        return StepOutputs(np.ascontiguousarray(logits[:, -1, :]), present)


def check_graph_names(input_names: set[str], output_names: set[str], config: LmConfig) -> None:
    """Check the graph has the contract's inputs and outputs for `config.layers` layers.

    Raises:
        InvalidInput: a name is missing (says which).
    """
    wanted_in = {"input_ids", "attention_mask", "position_ids"}
    wanted_out = {"logits"}
    for i in range(config.layers):
        for kind in ("key", "value"):
            wanted_in.add(f"past_key_values.{i}.{kind}")
            wanted_out.add(f"present.{i}.{kind}")
    missing = sorted(wanted_in - input_names) + sorted(wanted_out - output_names)
    if missing:
        raise InvalidInput(f"the causal LM graph lacks {', '.join(missing)}")
