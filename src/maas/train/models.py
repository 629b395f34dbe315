"""The model zoo (`mlp`, `cnn`), users' own builders, and the wrapper that is exported to ONNX.

Every core model maps a batch of scaled flat rows [N, F] to logits [N, K]. The exported module adds
the preprocessing (feature scaling) in front and probabilities and labels behind, so that a client
sends raw features and gets probabilities back.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from maas.errors import SpecError
from maas.train.spec import ModelSpec

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "silu": nn.SiLU,
}


class MLP(nn.Module):
    """Dense layers with an activation and dropout between them."""

    def __init__(self, n_features: int, n_classes: int, spec: ModelSpec) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = n_features
        for size in spec.hidden_sizes:
            layers += [nn.Linear(width, size), ACTIVATIONS[spec.activation]()]
            if spec.dropout:
                layers.append(nn.Dropout(spec.dropout))
            width = size
        layers.append(nn.Linear(width, n_classes))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)  # type: ignore[no-any-return]  # nn.Sequential is untyped


class CNN(nn.Module):
    """The classic conv-ReLU-pool twice, then two dense layers, sized from the image shape."""

    def __init__(self, image_shape: tuple[int, int, int], n_classes: int, spec: ModelSpec) -> None:
        super().__init__()
        channels, height, width = image_shape
        c1, c2 = spec.channels
        pad = spec.kernel_size // 2
        self.image_shape = image_shape
        self.features = nn.Sequential(
            nn.Conv2d(channels, c1, spec.kernel_size, padding=pad),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, spec.kernel_size, padding=pad),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        flat = c2 * (height // 4) * (width // 4)
        head: list[nn.Module] = [nn.Flatten(), nn.Linear(flat, spec.dense_size), nn.ReLU()]
        if spec.dropout:
            head.append(nn.Dropout(spec.dropout))
        head.append(nn.Linear(spec.dense_size, n_classes))
        self.head = nn.Sequential(*head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        images = x.reshape(-1, *self.image_shape)
        return self.head(self.features(images))  # type: ignore[no-any-return]  # untyped Sequential


def _import_builder(kind: str) -> Callable[..., nn.Module]:
    module_name, _, attr = kind.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise SpecError(f'model.kind: cannot import module "{module_name}" ({err})') from err
    builder = getattr(module, attr, None)
    if not callable(builder):
        raise SpecError(f'model.kind: "{module_name}" has no callable "{attr}"')
    return builder  # type: ignore[no-any-return]  # checked callable above


def build_model(
    spec: ModelSpec,
    n_features: int,
    n_classes: int,
    image_shape: tuple[int, int, int] | None,
) -> nn.Module:
    """Build the core model (scaled rows -> logits) that the spec asks for.

    A user's builder is called as `build(n_features=..., n_classes=..., image_shape=..., **options)`
    and must return an `nn.Module` mapping float32 [N, n_features] to logits [N, n_classes].
    """
    if spec.kind == "mlp":
        return MLP(n_features, n_classes, spec)
    if spec.kind == "cnn":
        if image_shape is None:
            raise SpecError(
                "model.kind: cnn needs image data (digits or an image folder); use mlp for tables"
            )
        if image_shape[1] < 4 or image_shape[2] < 4:
            raise SpecError(f"model.kind: cnn needs images of at least 4x4, got {image_shape}")
        return CNN(image_shape, n_classes, spec)
    builder = _import_builder(spec.kind)
    model = builder(
        n_features=n_features, n_classes=n_classes, image_shape=image_shape, **spec.options
    )
    if not isinstance(model, nn.Module):
        raise SpecError(f'model.kind: "{spec.kind}" returned {type(model).__name__}, not nn.Module')
    return model


class ServingModule(nn.Module):
    """What is exported: raw features -> (probabilities [N, K], label [N]).

    The scaling fitted on the training split is baked in as constants, so preprocessing travels
    with the model and every runtime applies it identically.
    """

    offset: torch.Tensor
    scale: torch.Tensor

    def __init__(self, core: nn.Module, offset: np.ndarray, scale: np.ndarray) -> None:
        super().__init__()
        self.core = core
        self.register_buffer("offset", torch.from_numpy(np.asarray(offset, dtype=np.float32)))
        self.register_buffer("scale", torch.from_numpy(np.asarray(scale, dtype=np.float32)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.core((x - self.offset) / self.scale)
        probabilities = torch.softmax(logits, dim=-1)
        return probabilities, torch.argmax(logits, dim=-1)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def describe(model: nn.Module) -> dict[str, Any]:
    """A small JSON-ready description for lineage."""
    return {"class": type(model).__name__, "parameters": count_parameters(model)}
