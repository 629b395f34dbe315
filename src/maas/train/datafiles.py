"""Parquet and NPZ readers, and what every table reader shares: label encoding, feature choice.

Bad cells become one-line DataErrors naming the file, the column and the row; rows are counted from
1, the first data row being row 1. A column is "numeric" when its type is (Parquet) or when at least
half of its non-empty cells are numbers (CSV): by default every numeric column besides the label is
a feature and any other cell in it is an error, while text columns (ids, names) are left out unless
`features` asks for them.
"""

from __future__ import annotations

import logging
import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

import numpy as np

from maas.errors import DataError

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger(__name__)

NPZ_DEFAULT_LABEL: Final = "y"
_INT_TEXT: Final = re.compile(r"[+-]?\d+")


@dataclass(frozen=True, eq=False)
class TableData:
    """What a reader produced: feature rows, encoded targets and names."""

    features: np.ndarray  # float32 [N, F]
    targets: np.ndarray  # int64 [N]
    labels: tuple[str, ...]
    feature_names: tuple[str, ...]
    image_shape: tuple[int, int, int] | None = None


def one_line(text: object) -> str:
    """`text` with its whitespace runs (newlines included) collapsed, for one-line messages."""
    return " ".join(str(text).split())


def encode_labels(values: np.ndarray, where: str) -> tuple[np.ndarray, tuple[str, ...]]:
    """Map sorted unique label values to class indices 0..K-1.

    Integers (or text that is all integers) sort by value, anything else sorts as text. Class
    names are kept as strings ("3", "setosa").

    Args:
        values: 1-D labels: integers, booleans, integral floats or strings.
        where: message prefix naming the file and column.

    Returns:
        int64 targets and the class names, `labels[i]` naming class i.
    """
    if values.dtype.kind == "f":
        if not np.all(np.isfinite(values)):
            row = int(np.flatnonzero(~np.isfinite(values))[0]) + 1
            raise DataError(f"{where} row {row} is not a finite number")
        if np.all(values == np.round(values)):
            values = values.astype(np.int64)
        else:
            values = np.array([repr(float(v)) for v in values])
    elif values.dtype.kind in "UO":
        text = [str(v) for v in values]
        if all(_INT_TEXT.fullmatch(t) for t in text):
            values = np.array([int(t) for t in text], dtype=np.int64)
        else:
            values = np.array(text, dtype=str)
    elif values.dtype.kind not in "iub":
        raise DataError(f"{where} has unsupported type {values.dtype}")
    uniques, inverse = np.unique(values, return_inverse=True)
    return inverse.astype(np.int64).reshape(-1), tuple(str(u) for u in uniques.tolist())


def pick_features(
    where: str,
    columns: Sequence[str],
    label: str,
    features: Sequence[str] | None,
    is_numeric: dict[str, bool],
) -> list[str]:
    """The feature columns: the ones asked for, or every other numeric column."""
    if features is not None:
        missing = [f for f in features if f not in columns]
        if missing:
            raise DataError(
                f'{where} feature column "{missing[0]}" not found; columns: {", ".join(columns)}'
            )
        if label in features:
            raise DataError(f'{where} label column "{label}" is also listed as a feature')
        if not features:
            raise DataError(f"{where} `features` is an empty list")
        return list(features)
    chosen = [c for c in columns if c != label and is_numeric[c]]
    skipped = [c for c in columns if c != label and not is_numeric[c]]
    if skipped:
        log.info("data.columns_skipped", extra={"file": where, "columns": skipped})
    if not chosen:
        raise DataError(f'{where} no numeric feature columns besides label "{label}"')
    return chosen


def require_label(where: str, label: str | None, columns: Sequence[str], what: str) -> str:
    if label is None:
        raise DataError(f"{where} set data.label ({what}); {what}s: {', '.join(columns)}")
    if label not in columns:
        raise DataError(f'{where} label {what} "{label}" not found; {what}s: {", ".join(columns)}')
    return label


def _parquet_numeric(where: str, table: pa.Table, column: str) -> np.ndarray:
    import pyarrow as pa

    data = table.column(column)
    kind = data.type
    if not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)):
        raise DataError(f'{where} column "{column}" is not numeric (type {kind})')
    if data.null_count:
        row = next(i for i, v in enumerate(data.is_null().to_pylist()) if v) + 1
        raise DataError(f'{where} column "{column}" row {row} is empty')
    values = np.asarray(data.to_numpy(), dtype=np.float64)
    if not np.all(np.isfinite(values)):
        row = int(np.flatnonzero(~np.isfinite(values))[0]) + 1
        raise DataError(f'{where} column "{column}" row {row} is not a finite number')
    return values


def _parquet_labels(where: str, values: list[object]) -> np.ndarray:
    for i, value in enumerate(values):
        if value is None:
            raise DataError(f"{where} row {i + 1} is empty")
    if all(isinstance(v, bool) for v in values):
        return np.array(values, dtype=bool)
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return np.array(values, dtype=np.int64)
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return np.array(values, dtype=np.float64)
    return np.array([str(v) for v in values], dtype=str)


def read_parquet(
    path: Path, name: str, label: str | None, features: Sequence[str] | None
) -> TableData:
    """Read a Parquet file; `name` is how messages call the file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    where = f'data file "{name}":'
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as err:
        raise DataError(f"{where} is not a readable Parquet file ({one_line(err)})") from err
    columns = list(table.column_names)
    label = require_label(where, label, columns, "column")
    if table.num_rows == 0:
        raise DataError(f"{where} has no rows")
    is_numeric = {
        c: pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)
        for c, t in zip(columns, table.schema.types, strict=True)
    }
    chosen = pick_features(where, columns, label, features, is_numeric)
    matrix = np.stack([_parquet_numeric(where, table, c) for c in chosen], axis=1)
    label_where = f'{where} label column "{label}"'
    raw = _parquet_labels(label_where, table.column(label).to_pylist())
    targets, labels = encode_labels(raw, label_where)
    return TableData(matrix.astype(np.float32), targets, labels, tuple(chosen))


def _npz_feature_names(
    where: str, arrays: Sequence[str], label: str, features: Sequence[str] | None
) -> list[str]:
    if features is not None:
        missing = [f for f in features if f not in arrays]
        if missing or not features:
            raise DataError(
                f'{where} feature array "{missing[0] if missing else ""}" not found; '
                f"arrays: {', '.join(arrays)}"
            )
        return list(features)
    others = [a for a in arrays if a != label]
    if len(others) == 1:
        return others
    for candidate in ("x", "X"):
        if candidate in others:
            return [candidate]
    raise DataError(
        f"{where} cannot tell which arrays are features; set data.features "
        f"(arrays: {', '.join(arrays)})"
    )


def _npz_matrix(where: str, parts: list[tuple[str, np.ndarray]], rows: int) -> np.ndarray:
    blocks = []
    for array_name, values in parts:
        if values.ndim == 0 or values.shape[0] != rows:
            raise DataError(
                f'{where} array "{array_name}" has shape {list(values.shape)}; '
                f"expected {rows} rows like the label array"
            )
        if values.dtype.kind not in "iufb":
            raise DataError(f'{where} array "{array_name}" is not numeric (dtype {values.dtype})')
        block = values.reshape(rows, -1).astype(np.float64)
        bad = np.argwhere(~np.isfinite(block))
        if bad.size:
            raise DataError(
                f'{where} array "{array_name}" row {bad[0][0] + 1} column {bad[0][1] + 1} '
                "is not a finite number"
            )
        blocks.append(block)
    return np.concatenate(blocks, axis=1).astype(np.float32)


def _npz_image_shape(parts: list[tuple[str, np.ndarray]]) -> tuple[int, int, int] | None:
    """[N, H, W] arrays are one-channel images, [N, C, H, W] ones are C-channel images."""
    if len(parts) != 1:
        return None
    shape = parts[0][1].shape
    if len(shape) == 3:
        return (1, int(shape[1]), int(shape[2]))
    if len(shape) == 4:
        return (int(shape[1]), int(shape[2]), int(shape[3]))
    return None


def read_npz(path: Path, name: str, label: str | None, features: Sequence[str] | None) -> TableData:
    """Read a NumPy .npz archive: a label array (default "y") and one or more feature arrays."""
    where = f'data file "{name}":'
    label = label or NPZ_DEFAULT_LABEL
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = list(archive.files)
            label = require_label(where, label, arrays, "array")
            chosen = _npz_feature_names(where, arrays, label, features)
            raw = archive[label]
            parts = [(a, archive[a]) for a in chosen]
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise DataError(f"{where} is not a readable .npz archive ({one_line(err)})") from err
    if raw.ndim != 1:
        raise DataError(f'{where} label array "{label}" must be 1-D, got shape {list(raw.shape)}')
    if raw.shape[0] == 0:
        raise DataError(f'{where} label array "{label}" is empty')
    matrix = _npz_matrix(where, parts, raw.shape[0])
    targets, labels = encode_labels(raw, f'{where} label array "{label}"')
    image_shape = _npz_image_shape(parts)
    if image_shape is not None:
        c, h, w = image_shape
        names = tuple(f"pixel_{k}_{i}_{j}" for k in range(c) for i in range(h) for j in range(w))
    else:
        names = tuple(f"{a}_{i}" for a, v in parts for i in range(int(np.prod(v.shape[1:]))))
    return TableData(matrix, targets, labels, names, image_shape)
