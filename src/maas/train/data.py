"""Training data: the `data:` spec section, loading with a content fingerprint, splits and scaling.

A dataset is a bundled scikit-learn set (digits, iris, wine, breast_cancer), a table file
(.csv, .parquet, .npz) or an image folder. Every source becomes the same `Dataset`: float32 feature
rows, int64 class indices and the class names. Problems with user data raise `DataError` with one
line that names the file and what is wrong. This module is numpy only; the training loop turns
arrays into tensors.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PositiveInt

from maas.errors import DataError
from maas.train.csvfile import read_csv
from maas.train.datafiles import TableData, read_npz, read_parquet
from maas.train.imagefolder import read_image_folder
from maas.train.scaling import Scaler, fit_scaler

__all__ = [
    "BUNDLED_DATASETS",
    "DataSpec",
    "Dataset",
    "Scaler",
    "SplitSpec",
    "Splits",
    "dataset_fingerprint",
    "fit_scaler",
    "load_dataset",
    "split_dataset",
]

log = logging.getLogger(__name__)

BUNDLED_DATASETS: Final = ("digits", "iris", "wine", "breast_cancer")
DIGITS_IMAGE_SHAPE: Final = (1, 8, 8)
_FINGERPRINT_VERSION: Final = b"maas-dataset-v1"  # bump if what the fingerprint covers changes

_Reader = Callable[[Path, str, str | None, list[str] | None], TableData]
_READERS: Final[dict[str, _Reader]] = {
    ".csv": read_csv,
    ".parquet": read_parquet,
    ".pq": read_parquet,
    ".npz": read_npz,
}


class SplitSpec(BaseModel):
    """How rows are divided into train, validation and test (fractions of all rows)."""

    model_config = ConfigDict(extra="forbid")

    validation: float = Field(default=0.15, ge=0.0, lt=0.5)
    test: float = Field(default=0.15, ge=0.0, lt=0.5)
    stratify: bool = True


class DataSpec(BaseModel):
    """The `data:` section of a training spec."""

    model_config = ConfigDict(extra="forbid")

    source: str = Field(min_length=1)
    label: str | None = None
    features: list[str] | None = Field(default=None, min_length=1)
    split: SplitSpec = Field(default_factory=SplitSpec)
    scaling: Literal["standard", "minmax", "none"] = "standard"
    image_size: tuple[PositiveInt, PositiveInt] | None = None
    grayscale: bool = True


@dataclass(frozen=True, eq=False)
class Dataset:
    """A loaded dataset: flat float32 rows, int64 class indices and what they mean.

    Attributes:
        source: the spec's `source`, as written.
        features: float32 [N, F]; image rows are [C, H, W] flattened in C order.
        targets: int64 [N], class indices 0..K-1.
        labels: class names; `labels[i]` names class i.
        feature_names: one name per feature column.
        image_shape: (C, H, W) when rows are images, else None.
        fingerprint: "sha256:<hex>" of the features, targets and labels.
    """

    source: str
    features: np.ndarray
    targets: np.ndarray
    labels: tuple[str, ...]
    feature_names: tuple[str, ...]
    image_shape: tuple[int, int, int] | None
    fingerprint: str

    @property
    def num_rows(self) -> int:
        """How many rows (examples) the dataset has."""
        return int(self.targets.shape[0])

    @property
    def num_classes(self) -> int:
        """How many classes the labels name."""
        return len(self.labels)


@dataclass(frozen=True, eq=False)
class Splits:
    """Train, validation and test rows; `is_stratified` is false when stratifying was impossible."""

    train_x: np.ndarray
    train_y: np.ndarray
    validation_x: np.ndarray
    validation_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    is_stratified: bool = False


def dataset_fingerprint(features: np.ndarray, targets: np.ndarray, labels: tuple[str, ...]) -> str:
    """A stable "sha256:<hex>" over the content: shape, feature bytes, target bytes and labels."""
    digest = hashlib.sha256(_FINGERPRINT_VERSION)
    header = {"shape": list(features.shape), "labels": list(labels)}
    digest.update(json.dumps(header, sort_keys=True).encode())
    digest.update(np.ascontiguousarray(features, dtype="<f4").data)
    digest.update(np.ascontiguousarray(targets, dtype="<i8").data)
    return f"sha256:{digest.hexdigest()}"


def _load_bundled(name: str) -> TableData:
    from sklearn import datasets

    loaders = {
        "digits": datasets.load_digits,
        "iris": datasets.load_iris,
        "wine": datasets.load_wine,
        "breast_cancer": datasets.load_breast_cancer,
    }
    bunch = loaders[name]()
    return TableData(
        features=np.asarray(bunch.data, dtype=np.float32),
        targets=np.asarray(bunch.target, dtype=np.int64),
        labels=tuple(str(n) for n in bunch.target_names),
        feature_names=tuple(str(n) for n in bunch.feature_names),
        image_shape=DIGITS_IMAGE_SHAPE if name == "digits" else None,
    )


def _looks_like_path(source: str) -> bool:
    return "/" in source or "\\" in source or Path(source).suffix != ""


def _load_source(spec: DataSpec, base_dir: Path | None) -> tuple[TableData, str]:
    """Read the spec's source; return the data and the message prefix naming it."""
    source = spec.source
    if source in BUNDLED_DATASETS:
        return _load_bundled(source), f'dataset "{source}"'
    path = Path(source).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    if not path.exists():
        if not _looks_like_path(source):
            raise DataError(
                f'unknown dataset "{source}"; bundled datasets: {", ".join(BUNDLED_DATASETS)}, '
                "or give a path to a .csv, .parquet or .npz file or an image folder"
            )
        raise DataError(f'data file "{source}": not found (looked for {path})')
    if path.is_dir():
        if spec.label is not None or spec.features is not None:
            raise DataError(
                f'image folder "{source}": data.label and data.features are for table files; '
                "an image folder's classes are its sub-folder names"
            )
        data = read_image_folder(path, source, spec.image_size, spec.grayscale)
        return data, f'image folder "{source}"'
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        raise DataError(
            f'data file "{source}": unsupported file type "{path.suffix or "(none)"}"; '
            f"use {', '.join(_READERS)} or an image folder"
        )
    return reader(path, source, spec.label, spec.features), f'data file "{source}"'


def load_dataset(spec: DataSpec, base_dir: Path | None = None) -> Dataset:
    """Load the dataset a `data:` spec names.

    Args:
        spec: the `data:` section.
        base_dir: the folder relative paths resolve against (the spec file's folder); the current
            directory when None.

    Returns:
        The dataset with its content fingerprint.

    Raises:
        DataError: the source is unknown, missing or unreadable, or has fewer than two classes.
    """
    data, where = _load_source(spec, base_dir)
    if len(data.labels) < 2:
        found = ", ".join(f'"{name}"' for name in data.labels)
        raise DataError(f"{where}: only {len(data.labels)} class ({found}); need at least 2")
    dataset = Dataset(
        source=spec.source,
        features=np.ascontiguousarray(data.features, dtype=np.float32),
        targets=np.ascontiguousarray(data.targets, dtype=np.int64),
        labels=data.labels,
        feature_names=data.feature_names,
        image_shape=data.image_shape,
        fingerprint=dataset_fingerprint(data.features, data.targets, data.labels),
    )
    log.info(
        "data.loaded",
        extra={
            "source": spec.source,
            "rows": dataset.num_rows,
            "features": dataset.features.shape[1],
            "classes": dataset.num_classes,
            "fingerprint": dataset.fingerprint,
        },
    )
    return dataset


def _split_count(fraction: float, rows: int, name: str, where: str) -> int:
    count = int(np.floor(fraction * rows + 0.5))
    if fraction > 0 and count == 0:
        raise DataError(
            f"{where}: split.{name} = {fraction} of {rows} rows leaves no {name} rows; "
            f"raise split.{name}, set it to 0, or add rows"
        )
    return count


def _quotas(counts: np.ndarray, total: int) -> np.ndarray:
    """Share `total` across classes in proportion to `counts` (largest remainder, exact sum)."""
    exact = counts * (total / counts.sum())
    quotas: np.ndarray = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - quotas), kind="stable")
    quotas[order[: total - int(quotas.sum())]] += 1
    return quotas


def _stratified_indices(
    targets: np.ndarray, n_test: int, n_val: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    classes, counts = np.unique(targets, return_counts=True)
    test_quota = _quotas(counts, n_test)
    val_quota = np.minimum(_quotas(counts, n_val), counts - test_quota - 1)
    train, val, test = [], [], []
    for cls, n_t, n_v in zip(classes, test_quota, val_quota, strict=True):
        rows = rng.permutation(np.flatnonzero(targets == cls))
        test.append(rows[:n_t])
        val.append(rows[n_t : n_t + n_v])
        train.append(rows[n_t + n_v :])
    joined: tuple[np.ndarray, np.ndarray, np.ndarray] = (
        np.concatenate(train),
        np.concatenate(val),
        np.concatenate(test),
    )
    return joined


def _can_stratify(targets: np.ndarray, split: SplitSpec, where: str) -> bool:
    needed = 1 + int(split.test > 0) + int(split.validation > 0)
    counts = np.bincount(targets)
    smallest = int(np.argmin(counts))
    if counts[smallest] >= needed:
        return True
    log.warning(
        "data.split_unstratified",
        extra={
            "source": where,
            "class_index": smallest,
            "rows": int(counts[smallest]),
            "needed": needed,
            "reason": "a class has too few rows to appear in every split; split at random",
        },
    )
    return False


def split_dataset(ds: Dataset, split: SplitSpec, seed: int) -> Splits:
    """Divide the rows into train, validation and test, the same way for the same seed.

    With `split.stratify`, each class keeps its share in every split. A class with fewer rows
    than there are non-empty splits cannot be stratified: the split is then made at random and a
    warning is logged (`Splits.is_stratified` is false).

    Raises:
        DataError: a nonzero fraction rounds to no rows, or no training rows would remain.
    """
    where = f'data "{ds.source}"'
    rows = ds.num_rows
    n_test = _split_count(split.test, rows, "test", where)
    n_val = _split_count(split.validation, rows, "validation", where)
    if rows - n_test - n_val < 1:
        raise DataError(f"{where}: split leaves none of {rows} rows for training; lower fractions")
    rng = np.random.default_rng(seed)
    is_stratified = split.stratify and _can_stratify(ds.targets, split, where)
    if is_stratified:
        train, val, test = _stratified_indices(ds.targets, n_test, n_val, rng)
    else:
        order = rng.permutation(rows)
        test, val, train = order[:n_test], order[n_test : n_test + n_val], order[n_test + n_val :]
    train, val, test = rng.permutation(train), rng.permutation(val), rng.permutation(test)
    return Splits(
        train_x=ds.features[train],
        train_y=ds.targets[train],
        validation_x=ds.features[val],
        validation_y=ds.targets[val],
        test_x=ds.features[test],
        test_y=ds.targets[test],
        is_stratified=is_stratified,
    )
