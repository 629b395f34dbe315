"""The rows a version is evaluated on: its own test split, another spec's test split, or a file.

numpy only: the test split is reproduced from the spec's data section and seed with the same
loading and splitting code as training, without importing torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from maas.errors import DataError, InvalidInput
from maas.registry.versions import ModelVersion
from maas.train.data import load_dataset, split_dataset
from maas.train.spec import Spec, load_spec, parse_spec

SPEC_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class EvalData:
    """Raw rows and true class indices (in the version's label order), and where they came from."""

    x: np.ndarray
    y: np.ndarray
    origin: str
    image_shape: tuple[int, int, int] | None = None


def version_spec(mv: ModelVersion) -> Spec:
    """The training spec in a version's lineage.

    Raises:
        InvalidInput: the version has none (registered from a plain ONNX file); pass --data.
    """
    data = mv.lineage.get("spec")
    if not isinstance(data, dict):
        raise InvalidInput(
            f"{mv.ref} has no training spec in its lineage; pass --data SPEC-OR-FILE"
        )
    return parse_spec(data, origin=f"{mv.ref} lineage spec")


def spec_test_rows(spec: Spec, base_dir: Path | None = None) -> EvalData:
    """The spec's test split, reproduced from its seed."""
    dataset = load_dataset(spec.data, base_dir)
    splits = split_dataset(dataset, spec.data.split, spec.seed)
    return EvalData(
        np.ascontiguousarray(splits.test_x, dtype=np.float32),
        np.asarray(splits.test_y, dtype=np.int64),
        f"test split of {spec.data.source} (seed {spec.seed})",
        dataset.image_shape,
    )


def _remap(y: np.ndarray, file_labels: tuple[str, ...], mv: ModelVersion, where: str) -> np.ndarray:
    """File class indices -> the version's class indices, matched by label name."""
    if not mv.labels:
        return y
    position = {label: i for i, label in enumerate(mv.labels)}
    unknown = [label for label in file_labels if label not in position]
    if unknown:
        raise DataError(f"{where}: labels {unknown} are not among {mv.ref}'s labels")
    mapping = np.array([position[label] for label in file_labels], dtype=np.int64)
    remapped: np.ndarray = mapping[y]
    return remapped


def load_eval_data(mv: ModelVersion, data: Path | None) -> EvalData:
    """What to evaluate `mv` on.

    Args:
        mv: the version.
        data: None for the version's own test split; a spec file (.yaml) for that spec's test
            split; any other file for all its rows, read with the version's column settings.
    """
    if data is None:
        return spec_test_rows(version_spec(mv))
    if data.suffix.lower() in SPEC_SUFFIXES:
        try:
            return spec_test_rows(load_spec(data), data.parent)
        except yaml.YAMLError as err:  # pragma: no cover - load_spec already wraps it
            raise InvalidInput(f"cannot read {data}: {err}") from err
    spec = version_spec(mv)
    file_spec = spec.data.model_copy(update={"source": str(data)})
    dataset = load_dataset(file_spec, None)
    y = _remap(dataset.targets, dataset.labels, mv, f'data file "{data}"')
    return EvalData(dataset.features, y, f"all rows of {data}", dataset.image_shape)
