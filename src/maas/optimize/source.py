"""The version being optimized: its ONNX bytes, spec, reproduced data splits and PyTorch weights."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import yaml
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from maas.errors import InvalidInput, NotFound
from maas.pipeline import prepare_data
from maas.registry.store import Registry
from maas.registry.versions import ModelVersion
from maas.train.data import Scaler, Splits
from maas.train.models import ServingModule, build_model
from maas.train.spec import Spec, parse_spec

log = logging.getLogger(__name__)

WEIGHTS_FILE = "weights.safetensors"
SPEC_FILE = "spec.yaml"


@dataclass(frozen=True)
class SourceVersion:
    """A registered version with everything an optimizer needs.

    Attributes:
        version: the registry's record.
        onnx_bytes: its verified ONNX artifact.
        spec: the training spec from its lineage.
        splits: raw (unscaled) train/validation/test rows, reproduced from the spec's seed.
        scaler: the preprocessing baked into the model.
        image_shape: (C, H, W) for image data, else None.
    """

    version: ModelVersion
    onnx_bytes: bytes
    spec: Spec
    splits: Splits
    scaler: Scaler
    image_shape: tuple[int, int, int] | None

    @property
    def n_features(self) -> int:
        """Features per input row."""
        return int(self.splits.train_x.shape[1])

    @property
    def n_classes(self) -> int:
        """Output classes."""
        return len(self.version.labels) or int(self.splits.train_y.max()) + 1

    @property
    def test_x(self) -> np.ndarray:
        """Raw float32 test rows."""
        return np.ascontiguousarray(self.splits.test_x, dtype=np.float32)


def spec_of(mv: ModelVersion) -> Spec:
    """The training spec recorded in a version's lineage.

    Raises:
        InvalidInput: the version was not trained by maas (no spec in its lineage).
    """
    data = mv.lineage.get("spec")
    if not isinstance(data, dict):
        raise InvalidInput(
            f"{mv.ref} has no training spec in its lineage (registered from a plain ONNX file?); "
            "optimizing needs a version trained by maas"
        )
    return parse_spec(data, origin=f"{mv.ref} lineage spec")


def load_source(registry: Registry, name: str, ref: str | int) -> SourceVersion:
    """Read a version, its artifact and its reproduced data splits.

    Raises:
        ModelNotFound: no such version.
        InvalidInput: the version has no training spec.
    """
    mv = registry.get(name, ref)
    spec = spec_of(mv)
    prepared = prepare_data(spec, None)
    fingerprint = mv.lineage.get("dataset", {}).get("fingerprint")
    if fingerprint and fingerprint != prepared.dataset.fingerprint:
        log.warning("optimize.data_changed", extra={"model": mv.ref})
    return SourceVersion(
        version=mv,
        onnx_bytes=registry.read_artifact(mv),
        spec=spec,
        splits=prepared.splits,
        scaler=prepared.scaler,
        image_shape=prepared.dataset.image_shape,
    )


def require_float(mv: ModelVersion, action: str) -> None:
    """Refuse to quantize or prune a version that is already int8 (work from its fp32 parent).

    Raises:
        InvalidInput: the version's precision is int8 or int8-partial.
    """
    precision = str(mv.lineage.get("precision", "fp32"))
    if precision != "fp32":
        parent = mv.lineage.get("parent_ref", "its fp32 parent")
        raise InvalidInput(f"{mv.ref} is already {precision}; {action} {parent} instead")


def rebuild_module(registry: Registry, source: SourceVersion) -> ServingModule:
    """The version's PyTorch ServingModule, rebuilt from its spec and stored weights.

    Raises:
        InvalidInput: the version keeps no PyTorch weights.
    """
    try:
        raw = registry.read_file(source.version, WEIGHTS_FILE)
    except NotFound as err:
        raise InvalidInput(
            f"{source.version.ref} keeps no PyTorch weights ({WEIGHTS_FILE}); pruning and "
            "integrated gradients need a version trained by maas"
        ) from err
    state = load_safetensors(raw)
    core = build_model(source.spec.model, source.n_features, source.n_classes, source.image_shape)
    module = ServingModule(core, source.scaler.offset, source.scaler.scale)
    module.load_state_dict(state)
    return module.eval()


def spec_yaml(spec: Spec) -> bytes:
    """A spec as the YAML file stored with a version."""
    text: str = yaml.safe_dump(spec.to_dict(), sort_keys=False)
    return text.encode()


def weights_bytes(module: ServingModule) -> bytes:
    """A ServingModule's state dict as safetensors bytes."""
    state = {k: v.detach().contiguous() for k, v in module.state_dict().items()}
    data: bytes = save_safetensors(state)
    return data


def child_lineage(parent: ModelVersion, optimization: dict[str, Any]) -> dict[str, Any]:
    """The lineage of an optimized version: the parent's facts plus the parent and the method."""
    lineage = dict(parent.lineage)
    lineage["parent_version"] = parent.version
    lineage["parent_ref"] = parent.ref
    lineage["optimization"] = optimization
    return lineage
