"""Explanations of one prediction: occlusion on the ONNX model, or integrated gradients (Captum).

Occlusion needs nothing but the registered artifact (see `maas.evaluate.occlusion`). Integrated
gradients need the version's PyTorch weights and import torch only when asked for.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from maas.errors import DataError, InvalidInput, ShapeMismatch
from maas.evaluate.data import version_spec
from maas.evaluate.occlusion import baseline_from_lineage, occlusion_attributions
from maas.evaluate.timing import open_session
from maas.registry.store import Registry
from maas.registry.versions import ModelVersion
from maas.train.data import load_dataset

log = logging.getLogger(__name__)

Method = Literal["occlusion", "integrated-gradients"]
IG_STEPS = 64  # Riemann steps; the completeness gap is printed so a user can judge


@dataclass(frozen=True)
class Explanation:
    """Attributions of one prediction.

    Attributes:
        ref: the version explained.
        method: occlusion or integrated-gradients.
        target: the class explained (index) and its label.
        probabilities: the model's output for the row.
        attributions: one value per feature (positive: supports the target class).
        row: the input row.
        feature_names: one name per feature.
        image_shape: (C, H, W) for image inputs, else None.
    """

    ref: str
    method: str
    target: int
    target_label: str
    probabilities: np.ndarray
    attributions: np.ndarray
    row: np.ndarray
    feature_names: tuple[str, ...]
    image_shape: tuple[int, int, int] | None

    def top(self, k: int = 10) -> list[dict[str, Any]]:
        """The k features with the largest absolute attribution."""
        order = np.argsort(-np.abs(self.attributions))[:k]
        return [
            {
                "index": int(i),
                "feature": self.feature_names[i],
                "value": float(self.row[i]),
                "attribution": float(self.attributions[i]),
            }
            for i in order
        ]

    def to_dict(self, k: int = 10) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "ref": self.ref,
            "method": self.method,
            "target": self.target,
            "target_label": self.target_label,
            "probability": float(self.probabilities[self.target]),
            "probabilities": [float(p) for p in self.probabilities],
            "top_features": self.top(k),
            "attributions": [float(a) for a in self.attributions],
        }


def parse_input(text: str, n_features: int) -> np.ndarray:
    """One input row from JSON text or a JSON file: `[..]`, `[[..]]` or `{"data": [..]}`.

    Raises:
        InvalidInput: not JSON, or not numbers.
        ShapeMismatch: not `n_features` values.
    """
    path = Path(text)
    raw = path.read_text() if not text.lstrip().startswith(("[", "{")) and path.is_file() else text
    try:
        doc = json.loads(raw)
    except json.JSONDecodeError as err:
        raise InvalidInput(f"--input is neither JSON nor a JSON file: {err}") from err
    if isinstance(doc, dict):
        doc = doc.get("data", doc.get("input"))
    try:
        row = np.asarray(doc, dtype=np.float32).reshape(-1)
    except (TypeError, ValueError) as err:
        raise InvalidInput("--input must hold numbers only") from err
    if row.size != n_features:
        raise ShapeMismatch(f"--input has {row.size} values; the model expects {n_features}")
    return row


def baseline_of(mv: ModelVersion, n_features: int) -> np.ndarray:
    """The training mean (the scaler's offset) when recorded, else zeros."""
    return baseline_from_lineage(mv.lineage, n_features)


def dataset_facts(mv: ModelVersion, n_features: int) -> tuple[tuple[str, ...], Any]:
    """Feature names and image shape of the version's training data (generic when unknown)."""
    try:
        dataset = load_dataset(version_spec(mv).data, None)
    except (InvalidInput, DataError) as err:
        log.info("explain.no_dataset", extra={"model": mv.ref, "reason": str(err)})
        return tuple(f"x{i}" for i in range(n_features)), None
    return dataset.feature_names, dataset.image_shape


def integrated_gradients(
    registry: Registry, mv: ModelVersion, row: np.ndarray, baseline: np.ndarray, target: int
) -> np.ndarray:
    """Integrated gradients of the target probability (Captum) on the version's PyTorch module."""
    import torch
    from captum.attr import IntegratedGradients

    from maas.optimize.source import load_source, rebuild_module

    module = rebuild_module(registry, load_source(registry, mv.name, mv.version))

    def probabilities(x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = module(x)[0]
        return out

    inputs = torch.from_numpy(row[None, :].copy())
    base = torch.from_numpy(baseline[None, :].copy())
    attributions, delta = IntegratedGradients(probabilities).attribute(
        inputs, baselines=base, target=target, n_steps=IG_STEPS, return_convergence_delta=True
    )
    log.info("explain.ig", extra={"model": mv.ref, "convergence_delta": float(delta.abs().max())})
    result: np.ndarray = attributions.detach().numpy()[0].astype(np.float32)
    return result


def explain_version(
    registry: Registry,
    name: str,
    ref: str | int,
    row: np.ndarray,
    *,
    method: Method = "occlusion",
    target: int | None = None,
) -> Explanation:
    """Attribute the prediction for `row` to its features.

    Raises:
        ModelNotFound: no such version.
        InvalidInput: unknown method or target, or no PyTorch weights for integrated gradients.
    """
    mv = registry.get(name, ref)
    n_features = int(row.size)
    session = open_session(registry.read_artifact(mv))
    probabilities = np.asarray(session.run(["probabilities"], {"input": row[None, :]})[0][0])
    cls = int(probabilities.argmax()) if target is None else int(target)
    if not 0 <= cls < probabilities.size:
        raise InvalidInput(f"--target {cls} is not a class index (0..{probabilities.size - 1})")
    baseline = baseline_of(mv, n_features)
    if method == "occlusion":
        attributions = occlusion_attributions(session, row, baseline, cls)
    elif method == "integrated-gradients":
        attributions = integrated_gradients(registry, mv, row, baseline, cls)
    else:
        raise InvalidInput(f"unknown method {method!r}; use occlusion or integrated-gradients")
    names, image_shape = dataset_facts(mv, n_features)
    labels = mv.labels or tuple(str(i) for i in range(probabilities.size))
    return Explanation(
        ref=mv.ref,
        method=method,
        target=cls,
        target_label=str(labels[cls]),
        probabilities=probabilities,
        attributions=attributions,
        row=row,
        feature_names=tuple(names)
        if len(names) == n_features
        else tuple(f"x{i}" for i in range(n_features)),
        image_shape=image_shape,
    )
