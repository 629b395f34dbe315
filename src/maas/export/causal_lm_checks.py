"""Prove an exported causal language model correct before it may be registered.

Checks, in order: the ONNX graph (onnx.checker, opset); the interface (input and output names of
the generative-version contract); logits and cache parity with PyTorch for a left-padded prefill
and several cached decode steps; greedy generation through onnxruntime (the torch-free loop of
`maas.generate.greedy`) equal to greedy generation in PyTorch recomputing every step without a
cache; and perplexity through onnxruntime on the validation (gated) and test windows.
A failure raises ValidationFailed naming the check and by how much it failed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnxruntime as ort
import torch

from maas.errors import ValidationFailed
from maas.export.causal_lm import input_names, output_names
from maas.export.validate import check_graph, open_session
from maas.generate.greedy import CacheShape, greedy_generate
from maas.train.gpt import GPT

DECODE_STEPS = 4  # cached steps compared after the prefill
PAD_LEFT = 2  # padding before the second row of the parity batch
GREEDY_PROMPTS = 3
GREEDY_NEW_TOKENS = 12
EVAL_WINDOWS = 16  # windows per onnxruntime call when measuring perplexity


@dataclass(frozen=True)
class CausalLMReport:
    """What validation measured; every field goes into the version's metrics."""

    opset: int
    parity_max_abs_diff: float
    greedy_tokens_compared: int
    validation_perplexity: float
    test_perplexity: float | None

    def to_metrics(self) -> dict[str, float]:
        metrics = {
            "parity_max_abs_diff": self.parity_max_abs_diff,
            "greedy_tokens_compared": float(self.greedy_tokens_compared),
            "validation_perplexity": self.validation_perplexity,
        }
        if self.test_perplexity is not None:
            metrics["test_perplexity"] = self.test_perplexity
        return metrics


def cache_shape(model: GPT) -> CacheShape:
    """The key/value cache layout of `model`."""
    options = model.options
    return CacheShape(options.layers, options.heads, options.dim // options.heads)


def check_interface(session: ort.InferenceSession, layers: int) -> None:
    """Input and output names, in order, must be those of the generative-version contract."""
    found_in = [i.name for i in session.get_inputs()]
    found_out = [o.name for o in session.get_outputs()]
    if found_in != input_names(layers) or found_out != output_names(layers):
        raise ValidationFailed(
            f"interface check failed: inputs {found_in}, outputs {found_out}; expected "
            f"{input_names(layers)} and {output_names(layers)}"
        )


def _torch_step(
    model: GPT, feeds: dict[str, np.ndarray], layers: int
) -> tuple[np.ndarray, list[np.ndarray]]:
    tensors = {name: torch.from_numpy(value) for name, value in feeds.items()}
    past = [
        (tensors[f"past_key_values.{i}.key"], tensors[f"past_key_values.{i}.value"])
        for i in range(layers)
    ]
    with torch.no_grad():
        logits, presents = model.step(
            tensors["input_ids"], tensors["attention_mask"], tensors["position_ids"], past
        )
    return logits.numpy(), [t.numpy() for pair in presents for t in pair]


def _max_diff(expected: list[np.ndarray], got: list[Any]) -> float:
    return max(float(np.max(np.abs(e - np.asarray(g)))) for e, g in zip(expected, got, strict=True))


def check_cached_parity(
    model: GPT, session: ort.InferenceSession, tokens: np.ndarray, atol: float
) -> float:
    """Max |torch - onnxruntime| over logits and cache: a prefill, then DECODE_STEPS steps.

    `tokens` is [2, n] with n > DECODE_STEPS + PAD_LEFT; the second row is left-padded.
    """
    shape = cache_shape(model)
    prefill = tokens.shape[1] - DECODE_STEPS
    mask = np.ones((2, prefill), dtype=np.int64)
    mask[1, :PAD_LEFT] = 0
    feeds: dict[str, np.ndarray] = {
        "input_ids": np.ascontiguousarray(tokens[:, :prefill]),
        "attention_mask": mask,
        "position_ids": np.maximum(np.cumsum(mask, axis=1) - 1, 0),
        **shape.empty(2),
    }
    worst = 0.0
    for step in range(DECODE_STEPS + 1):
        logits, presents = _torch_step(model, feeds, shape.layers)
        got = session.run(shape.output_names(), feeds)
        diff = _max_diff([logits, *presents], got)
        worst = max(worst, diff)
        if not diff <= atol:
            where = "the prefill" if step == 0 else f"decode step {step}"
            raise ValidationFailed(
                f"parity check failed: max abs difference {diff:.3g} between PyTorch and "
                f"onnxruntime at {where} exceeds {atol:g}"
            )
        if step == DECODE_STEPS:
            break
        mask = np.concatenate([mask, np.ones((2, 1), dtype=np.int64)], axis=1)
        feeds = {
            "input_ids": np.ascontiguousarray(tokens[:, prefill + step : prefill + step + 1]),
            "attention_mask": mask,
            "position_ids": feeds["position_ids"][:, -1:] + 1,
            **shape.next_past(got[1:]),
        }
    return worst


def torch_greedy(
    model: GPT, prompt: list[int], max_new_tokens: int, eos_token_id: int | None
) -> list[int]:
    """Greedy decoding in PyTorch, recomputing the whole sequence at each step (no cache)."""
    ids = list(prompt)
    generated: list[int] = []
    context = model.options.context
    with torch.no_grad():
        while len(generated) < max_new_tokens and len(ids) < context:
            logits = model(torch.tensor([ids], dtype=torch.int64))
            token = int(torch.argmax(logits[0, -1]))
            generated.append(token)
            ids.append(token)
            if token == eos_token_id:
                break
    return generated


def check_greedy(
    model: GPT, session: ort.InferenceSession, prompts: list[list[int]], eos_token_id: int | None
) -> int:
    """Greedy tokens from onnxruntime must equal those from PyTorch; returns how many compared."""
    compared = 0
    for prompt in prompts:
        expected = torch_greedy(model, prompt, GREEDY_NEW_TOKENS, eos_token_id)
        got = greedy_generate(
            session,
            prompt,
            cache=cache_shape(model),
            max_new_tokens=GREEDY_NEW_TOKENS,
            eos_token_id=eos_token_id,
            context=model.options.context,
        )
        if got != expected:
            raise ValidationFailed(
                f"greedy generation check failed: for a prompt of {len(prompt)} tokens "
                f"onnxruntime generated {got}, PyTorch {expected}"
            )
        compared += len(expected)
    return compared


def perplexity_onnx(
    session: ort.InferenceSession, x: np.ndarray, y: np.ndarray, model: GPT
) -> float:
    """exp(mean next-token cross-entropy) of windows `x` -> `y`, computed through onnxruntime."""
    shape = cache_shape(model)
    total, count = 0.0, 0
    for start in range(0, len(x), EVAL_WINDOWS):
        ids = np.ascontiguousarray(x[start : start + EVAL_WINDOWS], dtype=np.int64)
        feeds = {
            "input_ids": ids,
            "attention_mask": np.ones_like(ids),
            "position_ids": np.broadcast_to(np.arange(ids.shape[1]), ids.shape).copy(),
            **shape.empty(len(ids)),
        }
        logits = np.asarray(session.run(["logits"], feeds)[0], dtype=np.float64)
        peak = logits.max(axis=-1, keepdims=True)
        log_norm = np.log(np.exp(logits - peak).sum(axis=-1)) + peak[..., 0]
        target = np.take_along_axis(logits, y[start : start + EVAL_WINDOWS][..., None], -1)
        total += float((log_norm - target[..., 0]).sum())
        count += ids.size
    return math.exp(total / max(count, 1))


def validate_causal_lm(
    model_bytes: bytes,
    model: GPT,
    validation: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    *,
    eos_token_id: int | None,
    parity_atol: float = 1e-4,
    max_validation_perplexity: float | None = None,
) -> CausalLMReport:
    """Run every check on an exported causal LM; raise ValidationFailed at the first failure.

    Args:
        model_bytes: the ONNX graph.
        model: the PyTorch model it was exported from.
        validation: validation windows (inputs, next tokens), each [N, context].
        test: test windows (may be empty).
        eos_token_id: where greedy generation stops.
        parity_atol: largest allowed |torch - onnxruntime| of logits and cache.
        max_validation_perplexity: the gate; None for none.
    """
    opset = check_graph(model_bytes)
    try:
        session = open_session(model_bytes)
    except Exception as err:  # onnxruntime raises its own exception types
        raise ValidationFailed(f"onnxruntime cannot load the model: {err}") from err
    model.eval()
    check_interface(session, model.options.layers)
    val_x, val_y = validation
    rows = val_x[np.arange(2) % len(val_x)]
    window = min(val_x.shape[1], PAD_LEFT + DECODE_STEPS + 8)
    diff = check_cached_parity(model, session, rows[:, :window], parity_atol)
    lengths = [max(1, min(n, val_x.shape[1] - 1)) for n in (3, 8, 16)][:GREEDY_PROMPTS]
    prompts = [[int(t) for t in val_x[i % len(val_x), :n]] for i, n in enumerate(lengths)]
    compared = check_greedy(model, session, prompts, eos_token_id)
    perplexity = perplexity_onnx(session, val_x, val_y, model)
    if max_validation_perplexity is not None and not perplexity <= max_validation_perplexity:
        raise ValidationFailed(
            f"perplexity check failed: validation perplexity {perplexity:.3f} through "
            f"onnxruntime is above the allowed {max_validation_perplexity:.3f}"
        )
    test_perplexity = perplexity_onnx(session, *test, model) if len(test[0]) else None
    return CausalLMReport(opset, diff, compared, perplexity, test_perplexity)
