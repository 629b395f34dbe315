"""Tensor codecs of the v2 protocol: JSON `data`, raw little-endian bytes and BYTES framing.

BYTES elements travel as raw bytes, each preceded by its length as a 4-byte little-endian
unsigned integer (the binary tensor data extension and gRPC `raw_*_contents` use the same).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from typing import Any

import numpy as np

from maas.errors import InvalidInput
from maas.signature import V2_TO_NUMPY

_LENGTH = struct.Struct("<I")
MAX_DIMS = 16  # no real model has more; refuses absurd shapes before any allocation


# v2 datatype -> little-endian numpy dtype, and back; looked up on every request.
DTYPES: dict[str, np.dtype[Any]] = {
    v2: np.dtype(name).newbyteorder("<") if np.dtype(name).itemsize > 1 else np.dtype(name)
    for v2, name in V2_TO_NUMPY.items()
}
V2_OF_DTYPE: dict[np.dtype[Any], str] = {
    **{np.dtype(name): v2 for v2, name in V2_TO_NUMPY.items()},
    **{dtype: v2 for v2, dtype in DTYPES.items()},
}


def numpy_dtype(datatype: str, name: str) -> np.dtype[Any]:
    """The numpy dtype of a v2 datatype (little-endian), or InvalidInput naming the tensor."""
    dtype = DTYPES.get(datatype)
    if dtype is None:
        known = ", ".join(V2_TO_NUMPY)
        raise InvalidInput(f'tensor "{name}" has unknown datatype {datatype!r}; use one of {known}')
    return dtype


def v2_datatype(dtype: np.dtype[Any]) -> str:
    """The v2 datatype of a numpy dtype (object arrays and strings are BYTES)."""
    return V2_OF_DTYPE.get(dtype, "BYTES")


def parse_shape(value: Any, name: str) -> tuple[int, ...]:
    """A shape from JSON: a list of non-negative ints."""
    if not isinstance(value, list) or len(value) > MAX_DIMS:
        raise InvalidInput(f'tensor "{name}" needs "shape" as a list of at most {MAX_DIMS} ints')
    for dim in value:
        if not isinstance(dim, int) or isinstance(dim, bool) or dim < 0:
            raise InvalidInput(f'tensor "{name}" has an invalid shape {value!r}')
    return tuple(value)


def decode_json_data(data: Any, datatype: str, name: str) -> np.ndarray:
    """JSON `data` (flat or nested lists) -> a flat-or-nested numpy array of the datatype."""
    dtype = numpy_dtype(datatype, name)
    if not isinstance(data, list):
        raise InvalidInput(f'tensor "{name}" needs "data" as a list')
    if datatype == "BYTES":
        return _decode_json_strings(data, name)
    try:
        array = np.asarray(data, dtype=dtype)
    except (TypeError, ValueError, OverflowError) as err:
        raise InvalidInput(f'tensor "{name}" data cannot be read as {datatype}: {err}') from None
    if datatype == "BOOL" and not _all_bool(data):
        raise InvalidInput(f'tensor "{name}" data must be true/false for BOOL')
    return array


def _all_bool(data: list[Any]) -> bool:
    flat = data
    while flat and isinstance(flat[0], list):
        flat = [x for sub in flat for x in sub]
    return all(isinstance(x, bool) for x in flat)


def _decode_json_strings(data: list[Any], name: str) -> np.ndarray:
    items: list[bytes] = []
    stack = [data]
    while stack:  # flattens nested lists row-major without recursion
        current = stack.pop()
        for index, value in enumerate(current):
            if isinstance(value, list):
                stack.append(current[index + 1 :])
                stack.append(value)
                break
            if isinstance(value, str):
                items.append(value.encode())
            elif isinstance(value, bytes):
                items.append(value)
            else:
                raise InvalidInput(f'tensor "{name}" data must be strings for BYTES')
    array = np.empty(len(items), dtype=object)
    array[:] = items
    return array


def decode_raw(
    raw: bytes | memoryview, datatype: str, shape: Sequence[int], name: str
) -> np.ndarray:
    """Raw little-endian bytes (or length-prefixed BYTES) -> a flat numpy array.

    Raises:
        InvalidInput: the byte count does not fit the datatype and shape.
    """
    dtype = numpy_dtype(datatype, name)
    count = math.prod(shape)
    if datatype == "BYTES":
        return decode_bytes_elements(raw, name, count)
    expected = count * dtype.itemsize
    if len(raw) != expected:
        raise InvalidInput(
            f'input "{name}" has {len(raw)} bytes of binary data; shape '
            f"[{', '.join(str(d) for d in shape)}] of {datatype} needs {expected}"
        )
    array = np.frombuffer(raw, dtype=dtype)
    if dtype.alignment > 1 and not array.flags.aligned:
        # An odd offset in the body; the runtime wants aligned memory. bytes() copies without
        # releasing the GIL (numpy's copy would, handing it to a worker thread mid-request).
        array = np.frombuffer(bytes(raw), dtype=dtype)
    return array


def decode_bytes_elements(
    raw: bytes | memoryview, name: str, count: int | None = None
) -> np.ndarray:
    """Length-prefixed elements -> object array of bytes; checks the framing and the count."""
    view = memoryview(raw)
    items: list[bytes] = []
    offset = 0
    while offset < len(view):
        if offset + 4 > len(view):
            raise InvalidInput(f'input "{name}" has a truncated BYTES element length')
        (size,) = _LENGTH.unpack_from(view, offset)
        offset += 4
        if offset + size > len(view):
            raise InvalidInput(f'input "{name}" has a BYTES element past the end of its data')
        items.append(bytes(view[offset : offset + size]))
        offset += size
    if count is not None and len(items) != count:
        raise InvalidInput(
            f'input "{name}" has {len(items)} BYTES elements; its shape needs {count}'
        )
    array = np.empty(len(items), dtype=object)
    array[:] = items
    return array


def encode_raw(array: np.ndarray) -> bytes:
    """A tensor's raw little-endian bytes (length-prefixed for BYTES/object arrays)."""
    if array.dtype == object:
        parts: list[bytes] = []
        for item in array.ravel().tolist():
            value = item if isinstance(item, bytes) else str(item).encode()
            parts.append(_LENGTH.pack(len(value)))
            parts.append(value)
        return b"".join(parts)
    if array.dtype.byteorder == ">":
        array = array.astype(array.dtype.newbyteorder("<"))
    return np.ascontiguousarray(array).tobytes()


def json_data(array: np.ndarray) -> Any:
    """A tensor's flat row-major JSON `data`: numpy arrays for orjson, str for BYTES."""
    if array.dtype == object:
        return [
            item.decode(errors="replace") if isinstance(item, bytes) else str(item)
            for item in array.ravel().tolist()
        ]
    return np.ascontiguousarray(array).ravel()
