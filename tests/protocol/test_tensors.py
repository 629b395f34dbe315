"""Tensor codecs: raw bytes for every datatype, BYTES framing, JSON data."""

from __future__ import annotations

import numpy as np
import pytest

from maas.errors import InvalidInput
from maas.protocol.tensors import decode_json_data, decode_raw, encode_raw, json_data

NUMERIC = ["BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
           "FP16", "FP32", "FP64"]  # fmt: skip


@pytest.mark.parametrize("datatype", NUMERIC)
def test_raw_round_trip_for_every_numeric_datatype(datatype: str) -> None:
    from maas.signature import V2_TO_NUMPY

    array = (np.arange(6) % 2 if datatype == "BOOL" else np.arange(6)).astype(V2_TO_NUMPY[datatype])
    raw = encode_raw(array)
    back = decode_raw(raw, datatype, (2, 3), "t")
    np.testing.assert_array_equal(back, array)


def test_raw_at_an_odd_offset_is_aligned() -> None:
    raw = b"\0" + np.arange(4, dtype=np.float64).tobytes()
    back = decode_raw(memoryview(raw)[1:], "FP64", (4,), "t")
    assert back.ctypes.data % 8 == 0
    assert back.tolist() == [0, 1, 2, 3]


def test_bytes_round_trip_and_count_check() -> None:
    array = np.array([b"a", b"", "\u00e9".encode()], dtype=object)
    raw = encode_raw(array)
    assert decode_raw(raw, "BYTES", (3,), "t").tolist() == array.tolist()
    with pytest.raises(InvalidInput, match="3 BYTES elements; its shape needs 2"):
        decode_raw(raw, "BYTES", (2,), "t")
    with pytest.raises(InvalidInput, match="truncated"):
        decode_raw(raw + b"\0", "BYTES", (3,), "t")


def test_json_data_flattens_and_decodes_strings() -> None:
    assert json_data(np.arange(6).reshape(2, 3)[:, ::2]).tolist() == [0, 2, 3, 5]
    assert json_data(np.array([b"x", b"y"], dtype=object)) == ["x", "y"]
    nested = decode_json_data([["a", "b"], ["c", "d"]], "BYTES", "t")
    assert nested.tolist() == [b"a", b"b", b"c", b"d"]


def test_unknown_datatype_lists_the_known_ones() -> None:
    with pytest.raises(InvalidInput, match="unknown datatype 'FLOAT32'; use one of BOOL"):
        decode_json_data([1.0], "FLOAT32", "t")
