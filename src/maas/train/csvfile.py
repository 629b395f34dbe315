"""Read a CSV file with a header row into feature rows and class indices.

Well-formed files take a fast path through pyarrow's CSV reader. Anything it does not accept as is
(ragged rows, empty or non-numeric cells, NaN, odd spacing, encodings) is read again, row by row,
with the csv module, which either reads it or raises a DataError naming the row, its line in the
file and the column. Both paths give the same values for the same file.

Rows are counted from 1, the first data row being row 1. Feature columns follow the rules in
`maas.train.datafiles.pick_features`: by default every numeric column besides the label, where a
column is numeric when at least half of its non-empty cells are numbers.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Final, TextIO

import numpy as np

from maas.errors import DataError
from maas.train.datafiles import (
    TableData,
    encode_labels,
    one_line,
    pick_features,
    require_label,
)

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger(__name__)

_PREVIEW_CHARS: Final = 40  # a bad cell is quoted in messages, cut to this length


def _preview(cell: str) -> str:
    """The cell as messages quote it: line breaks escaped, long text cut."""
    shown = cell.replace("\r", "\\r").replace("\n", "\\n")
    return shown if len(shown) <= _PREVIEW_CHARS else shown[:_PREVIEW_CHARS] + "..."


def _parse_float(cell: str) -> float | None:
    try:
        return float(cell)
    except ValueError:
        return None


def _is_numeric_column(cells: Sequence[str]) -> bool:
    """True when at least half of the non-empty cells are numbers."""
    filled = [c for c in cells if c.strip()]
    numbers = sum(1 for c in filled if _parse_float(c) is not None)
    return bool(filled) and 2 * numbers >= len(filled)


def _fast_floats(cells: Sequence[str]) -> np.ndarray | None:
    """All cells as float64, or None if any cell is not a number."""
    try:
        # float() per cell beats numpy's str-to-float cast, which copies into a fixed-width array.
        return np.array([float(cell) for cell in cells], dtype=np.float64)
    except ValueError:
        return None


def _bad_cell_problem(cell: str) -> str:
    if not cell.strip():
        return "is empty"
    value = _parse_float(cell)
    if value is None:
        return f'is not numeric ("{_preview(cell)}")'
    return f'is not a finite number ("{_preview(cell)}")'


class _CsvTable:
    """A CSV file read into columns of text, ragged rows refused with their row and line."""

    def __init__(self, path: Path, name: str) -> None:
        self.where = f'data file "{name}":'
        self.columns: list[str] = []
        self.lines: list[int] = []  # file line of each data row, for messages
        self.cells: dict[str, list[str]] = {}
        self.parsed: dict[str, np.ndarray] = {}  # columns already read as numbers
        try:
            with path.open(newline="", encoding="utf-8-sig") as handle:
                self._read(handle)
        except UnicodeDecodeError as err:
            raise DataError(f"{self.where} is not UTF-8 text ({err.reason})") from err
        except csv.Error as err:
            raise DataError(f"{self.where} is not valid CSV ({one_line(err)})") from err

    def _read(self, handle: TextIO) -> None:
        reader = csv.reader(handle)
        header = next((row for row in reader if row), None)
        if header is None:
            raise DataError(f"{self.where} is empty")
        self.columns = [h.strip() for h in header]
        duplicates = sorted({c for c in self.columns if self.columns.count(c) > 1})
        if duplicates:
            raise DataError(f"{self.where} has duplicate column names: {', '.join(duplicates)}")
        rows: list[list[str]] = []
        for row in reader:
            if not row:
                continue
            if len(row) != len(self.columns):
                raise DataError(
                    f"{self.where} row {len(rows) + 1} (line {reader.line_num}) has "
                    f"{len(row)} cells, expected {len(self.columns)}"
                )
            rows.append(row)
            self.lines.append(reader.line_num)
        if not rows:
            raise DataError(f"{self.where} has a header but no data rows")
        self.cells = {c: [r[i] for r in rows] for i, c in enumerate(self.columns)}

    def is_numeric(self, column: str) -> bool:
        """True when every cell is a number, or at least half of the non-empty ones are."""
        values = _fast_floats(self.cells[column])
        if values is not None:
            self.parsed[column] = values
            return True
        return _is_numeric_column(self.cells[column])

    def numeric(self, column: str) -> np.ndarray:
        """The column as float64, or a DataError naming the first bad cell."""
        cells = self.cells[column]
        values = self.parsed.get(column)
        if values is None:
            values = _fast_floats(cells)
        if values is None:
            parsed = (_parse_float(cell) for cell in cells)
            values = np.array([np.nan if v is None else v for v in parsed], dtype=np.float64)
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            i = int(bad[0])
            raise DataError(
                f'{self.where} column "{column}" row {i + 1} (line {self.lines[i]}) '
                f"{_bad_cell_problem(cells[i])}"
            )
        return values

    def label_values(self, column: str) -> np.ndarray:
        cells = [c.strip() for c in self.cells[column]]
        for i, cell in enumerate(cells):
            if not cell:
                raise DataError(
                    f'{self.where} label column "{column}" row {i + 1} '
                    f"(line {self.lines[i]}) is empty"
                )
        return np.array(cells, dtype=str)


def _arrow_table(path: Path, label: str, features: Sequence[str] | None) -> pa.Table | None:
    """The file as a pyarrow table (label as text, asked-for features as numbers), or None."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    types = {f: pa.float64() for f in features or ()}
    types[label] = pa.string()
    convert = pacsv.ConvertOptions(
        column_types=types, strings_can_be_null=False, quoted_strings_can_be_null=False
    )
    parse = pacsv.ParseOptions(newlines_in_values=True)
    try:
        table = pacsv.read_csv(path, parse_options=parse, convert_options=convert)
    except (pa.ArrowException, OSError, UnicodeError):
        return None
    columns = list(table.column_names)
    if label not in columns or table.num_rows == 0 or len(set(columns)) != len(columns):
        return None
    if any(c != c.strip() for c in columns):
        return None
    return table


def _arrow_numeric(table: pa.Table, label: str) -> dict[str, bool] | None:
    """Which columns are numeric, or None when a text column is mostly numbers (a bad cell)."""
    import pyarrow as pa

    is_numeric = {}
    for column, kind in zip(table.column_names, table.schema.types, strict=True):
        is_numeric[column] = pa.types.is_integer(kind) or pa.types.is_floating(kind)
        mostly_numbers = pa.types.is_string(kind) and _is_numeric_column(
            table.column(column).to_pylist()
        )
        if column != label and mostly_numbers:
            return None
    return is_numeric


def _read_fast(
    path: Path, name: str, label: str, features: Sequence[str] | None
) -> TableData | None:
    """Read a clean file with pyarrow; None when anything needs the careful reader's judgement."""
    table = _arrow_table(path, label, features)
    is_numeric = None if table is None else _arrow_numeric(table, label)
    if table is None or is_numeric is None:
        return None
    where = f'data file "{name}":'
    chosen = pick_features(where, table.column_names, label, features, is_numeric)
    blocks = []
    for column in chosen:
        data = table.column(column)
        if data.null_count or not is_numeric[column]:
            return None
        values = np.asarray(data.to_numpy(), dtype=np.float64)
        if not np.all(np.isfinite(values)):
            return None
        blocks.append(values)
    raw_labels = [str(v).strip() for v in table.column(label).to_pylist()]
    if not all(raw_labels):
        return None
    where_label = f'{where} label column "{label}"'
    targets, labels = encode_labels(np.array(raw_labels, dtype=str), where_label)
    matrix = np.stack(blocks, axis=1).astype(np.float32)
    return TableData(matrix, targets, labels, tuple(chosen))


def _read_checked(
    path: Path, name: str, label: str | None, features: Sequence[str] | None
) -> TableData:
    """Read row by row, raising a DataError that names the first problem."""
    table = _CsvTable(path, name)
    where = table.where
    label = require_label(where, label, table.columns, "column")
    is_numeric = {c: table.is_numeric(c) for c in table.columns}
    chosen = pick_features(where, table.columns, label, features, is_numeric)
    matrix = np.stack([table.numeric(c) for c in chosen], axis=1).astype(np.float32)
    targets, labels = encode_labels(table.label_values(label), f'{where} label column "{label}"')
    return TableData(matrix, targets, labels, tuple(chosen))


def read_csv(path: Path, name: str, label: str | None, features: Sequence[str] | None) -> TableData:
    """Read a CSV file with a header row; `name` is how messages call the file.

    Args:
        path: the file.
        name: how messages call the file (the spec's `source`).
        label: the label column; required.
        features: the feature columns, or None for every other numeric column.

    Returns:
        Feature rows, encoded targets, class names and feature names.
    """
    fast = _read_fast(path, name, label, features) if label is not None else None
    if fast is not None:
        return fast
    log.debug("data.csv_careful_read", extra={"file": name})
    return _read_checked(path, name, label, features)
