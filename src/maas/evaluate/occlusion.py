"""Occlusion attributions: how much each feature's value moves the model's output.

Gradient-free and model-agnostic: feature i is replaced by its baseline value (the training
mean, or 0) and the drop in the target class's probability is its attribution. All occluded
variants of one input go to the model in a single batched call. numpy only, so the server can
call it with any function that maps a batch of rows to probabilities.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import onnxruntime as ort

from maas.errors import ShapeMismatch

INPUT_NAME = "input"
PROBABILITIES = "probabilities"

PredictFn = Callable[[np.ndarray], np.ndarray]


def session_predictor(session: ort.InferenceSession) -> PredictFn:
    """A predict function (rows -> probabilities) over an onnxruntime session."""

    def predict(rows: np.ndarray) -> np.ndarray:
        out: np.ndarray = session.run([PROBABILITIES], {INPUT_NAME: rows})[0]
        return out

    return predict


def occlusion_attributions(
    session_or_runner_fn: ort.InferenceSession | PredictFn,
    x: np.ndarray,
    baseline: np.ndarray,
    target: int | None = None,
    window: int = 1,
) -> np.ndarray:
    """Per-feature attributions of one input row by occlusion.

    Args:
        session_or_runner_fn: an onnxruntime session (input "input", output "probabilities")
            or a function mapping float32 rows [N, F] to probabilities [N, K].
        x: one input row, shape [F] or [1, F].
        baseline: the value each feature takes when occluded, shape [F] (training mean or 0).
        target: the class to explain; None explains the predicted class.
        window: features occluded together (consecutive blocks of this many).

    Returns:
        float32 [F]: probability of `target` for `x` minus its probability with the feature
        (block) occluded; a feature in a block of `window` gets the block's value.

    Raises:
        ShapeMismatch: `x` is not one row or `baseline` does not match it.
    """
    row = np.asarray(x, dtype=np.float32).reshape(-1)
    base = np.asarray(baseline, dtype=np.float32).reshape(-1)
    if np.asarray(x).ndim > 2 or (np.asarray(x).ndim == 2 and np.asarray(x).shape[0] != 1):
        raise ShapeMismatch(f"occlusion explains one row at a time, got shape {list(np.shape(x))}")
    if base.shape != row.shape:
        raise ShapeMismatch(
            f"baseline has {base.size} values; the input row has {row.size} features"
        )
    predict = (
        session_predictor(session_or_runner_fn)
        if isinstance(session_or_runner_fn, ort.InferenceSession)
        else session_or_runner_fn
    )
    batch = occlusion_batch(row, base, window)
    probabilities = np.asarray(predict(batch), dtype=np.float32)
    cls = int(np.argmax(probabilities[0])) if target is None else int(target)
    return attributions_from(probabilities, cls, row.size, window)


def occlusion_batch(row: np.ndarray, baseline: np.ndarray, window: int = 1) -> np.ndarray:
    """The rows to run for one occlusion: `row` itself, then one copy per occluded block.

    Args:
        row: one flat input row [F].
        baseline: the occluded values [F].
        window: features occluded together (consecutive blocks of this many).

    Returns:
        float32 [1 + ceil(F / window), F].
    """
    n_features = row.size
    starts = range(0, n_features, max(1, window))
    batch = np.repeat(row.reshape(1, -1).astype(np.float32), len(starts) + 1, axis=0)
    for i, start in enumerate(starts, start=1):
        stop = min(start + window, n_features)
        batch[i, start:stop] = baseline[start:stop]
    return batch


def attributions_from(
    scores: np.ndarray, target: int, n_features: int, window: int = 1
) -> np.ndarray:
    """Attributions from the model's scores for an `occlusion_batch` of `n_features` features.

    Args:
        scores: [1 + blocks, K]: the scores of the original row, then of each occluded copy.
        target: the class whose score is attributed.
        n_features: F, the length of the row.
        window: the block size the batch was built with.

    Returns:
        float32 [F]: the target's score on the original row minus its score with the
        feature's block occluded (every feature of a block gets the block's value).
    """
    drops = (scores[0, target] - scores[1:, target]).astype(np.float32)
    return np.repeat(drops, max(1, window))[:n_features]


def baseline_from_lineage(lineage: Mapping[str, Any], n_features: int) -> np.ndarray:
    """The occluded values: the training mean (the recorded scaler's offset), else zeros."""
    offset = lineage.get("preprocessing", {}).get("offset")
    if isinstance(offset, list) and len(offset) == n_features:
        return np.asarray(offset, dtype=np.float32)
    return np.zeros(n_features, dtype=np.float32)


def occlude(x: np.ndarray, baseline: np.ndarray, features: np.ndarray) -> np.ndarray:
    """A copy of row `x` with `features` (indices) set to their baseline values."""
    row = np.asarray(x, dtype=np.float32).reshape(-1).copy()
    index = np.asarray(features, dtype=np.int64)
    row[index] = np.asarray(baseline, dtype=np.float32).reshape(-1)[index]
    return row
