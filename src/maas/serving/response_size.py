"""How large an answer will be, checked against the server's `max_response_bytes` before it is
built, so no request makes the server hold more than the cap for its answer.

Two checks, both raising `ResponseTooLarge`:

1. `check_payload`, in the data plane, before the response tensors are made: the model's outputs
   as raw bytes, and the class strings a `classification` output would hold. No encoding is
   smaller than this, and class strings are made only once they are known to fit.
2. `check_encoded`, in each transport, before it encodes: an upper bound of the encoded size in
   the encoding the answer will use (JSON text is up to five times the raw bytes).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable

import numpy as np

from maas.errors import ResponseTooLarge
from maas.protocol.types import InferResponse, InferTensor, RequestedOutput


class Encoding(enum.Enum):
    """How a response tensor travels."""

    RAW = "raw"  # binary tensor data extension (REST), raw_output_contents (gRPC)
    PROTO = "proto"  # typed InferTensorContents (gRPC)
    JSON = "json"  # JSON `data` (REST v2 and the compatible APIs)


# The longest JSON text of one element, comma included (orjson's shortest round-trip floats).
JSON_ELEMENT_BYTES: dict[str, int] = {
    "BOOL": 6,  # false,
    "INT8": 5,
    "INT16": 7,
    "INT32": 12,
    "INT64": 21,  # -9223372036854775808,
    "UINT8": 4,
    "UINT16": 6,
    "UINT32": 11,
    "UINT64": 21,
    "FP16": 17,
    "FP32": 17,  # -3.4028235e+38, or -0.000061035156,
    "FP64": 25,  # -2.2250738585072014e-308,
}
# The longest protobuf encoding of one element of packed typed contents.
PROTO_ELEMENT_BYTES: dict[str, int] = {
    "BOOL": 1,
    "INT8": 10,  # int32 fields: a negative value is a 10-byte varint
    "INT16": 10,
    "INT32": 10,
    "INT64": 10,
    "UINT8": 2,
    "UINT16": 3,
    "UINT32": 5,
    "UINT64": 10,
    "FP16": 2,  # travels raw
    "FP32": 4,
    "FP64": 8,
}
RESPONSE_OVERHEAD_BYTES = 256  # the keys, names and parameters around the outputs
TENSOR_OVERHEAD_BYTES = 96  # the keys, datatype and punctuation around one output
DIMENSION_BYTES = 21  # one shape entry, comma included
SCORE_TEXT_BYTES = 12  # `f"{score:g}"` of a float: at most `-1.17549e-38`
BYTES_ELEMENT_RAW_BYTES = 4  # the length prefix of a BYTES element in raw contents
BYTES_ELEMENT_PROTO_BYTES = 6  # field tag and length varint of a `bytes_contents` element
BYTES_ELEMENT_JSON_BYTES = 3  # quotes and comma around a JSON string
JSON_ESCAPE_BYTES = 5  # `"` -> `\"` adds one; a control byte -> `\u001f` adds five
INVALID_UTF8_BYTES = 2  # a byte that is not UTF-8 becomes U+FFFD: three bytes for one
_JSON_ESCAPED = bytes(range(0x20)) + b'"\\'
_NON_ASCII = bytes(range(0x80, 0x100))


def check_payload(
    outputs: Iterable[tuple[RequestedOutput, np.ndarray]],
    labels: tuple[str, ...],
    limit: int,
) -> None:
    """Refuse outputs whose raw bytes (or class strings) alone are over `limit`.

    Raises:
        ResponseTooLarge: the answer could not fit in any encoding.
    """
    total = 0
    for requested, array in outputs:
        if requested.classification > 0:
            total += classification_bytes(array, requested.classification, labels)
        else:
            total += array.nbytes
    if total > limit:
        raise ResponseTooLarge(_too_large(total, limit, "ask for fewer outputs or classes"))


def classification_bytes(scores: np.ndarray, k: int, labels: tuple[str, ...]) -> int:
    """The most bytes the top-`k` `"score:index:label"` strings of `scores` can take."""
    rows = scores.shape[0] if scores.ndim > 1 else 1
    width = scores.size // rows if rows else 0
    per_row = min(k, width)
    longest_label = max((len(label.encode()) for label in labels[:width]), default=0)
    text = SCORE_TEXT_BYTES + 1 + len(str(max(width - 1, 0))) + 1 + longest_label
    return rows * per_row * (text + BYTES_ELEMENT_RAW_BYTES)


def check_encoded(
    response: InferResponse,
    limit: int,
    encoding: Encoding | Callable[[InferTensor], Encoding],
) -> None:
    """Refuse a response whose encoding could be over `limit`, before encoding it.

    Args:
        response: the answer to encode.
        limit: the server's `max_response_bytes`.
        encoding: how the outputs will travel, or a function saying it for each output.

    Raises:
        ResponseTooLarge: the encoded answer could be over `limit`.
    """
    total = response_bytes(response, encoding)
    if total > limit:
        hint = "ask for fewer outputs, or for binary outputs where the API has them"
        raise ResponseTooLarge(_too_large(total, limit, hint))


def response_bytes(
    response: InferResponse, encoding: Encoding | Callable[[InferTensor], Encoding]
) -> int:
    """An upper bound of the encoded size of a v2 answer. (The row format of the compatible
    APIs repeats output names once per row as well: at most `max_batch_size` times.)"""
    echoed = (response.id or "").encode()  # the client's id, escaped at worst
    total = RESPONSE_OVERHEAD_BYTES + (1 + JSON_ESCAPE_BYTES) * len(echoed)
    for tensor in response.outputs:
        how = encoding if isinstance(encoding, Encoding) else encoding(tensor)
        total += encoded_bytes(tensor, how)
    return total


def encoded_bytes(tensor: InferTensor, encoding: Encoding) -> int:
    """An upper bound of one output's encoded size, its name and shape included."""
    overhead = (
        TENSOR_OVERHEAD_BYTES + len(tensor.name.encode()) + DIMENSION_BYTES * len(tensor.shape)
    )
    if tensor.data.dtype == object:
        return overhead + _strings_bytes(tensor.data, encoding)
    if encoding is Encoding.RAW:
        return overhead + tensor.data.nbytes
    table = JSON_ELEMENT_BYTES if encoding is Encoding.JSON else PROTO_ELEMENT_BYTES
    return overhead + tensor.data.size * table.get(tensor.datatype, JSON_ELEMENT_BYTES["FP64"])


def _strings_bytes(data: np.ndarray, encoding: Encoding) -> int:
    items = [item if isinstance(item, bytes) else str(item).encode() for item in data.flat]
    total = sum(len(item) for item in items)
    if encoding is Encoding.RAW:
        return total + BYTES_ELEMENT_RAW_BYTES * len(items)
    if encoding is Encoding.PROTO:
        return total + BYTES_ELEMENT_PROTO_BYTES * len(items)
    expansion = 0
    for item in items:
        expansion += JSON_ESCAPE_BYTES * (len(item) - len(item.translate(None, _JSON_ESCAPED)))
        expansion += INVALID_UTF8_BYTES * (len(item) - len(item.translate(None, _NON_ASCII)))
    return total + expansion + BYTES_ELEMENT_JSON_BYTES * len(items)


def _too_large(estimate: int, limit: int, hint: str) -> str:
    return (
        f"the answer would take about {estimate} bytes, over this server's limit of {limit} "
        f"bytes (max_response_bytes); send fewer rows, or {hint}"
    )
