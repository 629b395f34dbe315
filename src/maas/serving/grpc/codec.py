"""Inference messages: gRPC `ModelInferRequest`/`ModelInferResponse` <-> maas.protocol.types.

Tensors arrive either as typed `contents` or as `raw_input_contents` (row-major little-endian bytes,
one entry per input). Raw bytes are viewed with `np.frombuffer` (no copy); a response to a raw
request goes back as `raw_output_contents` made with one `tobytes()` per output.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping, MutableMapping, Sequence
from typing import Any

import numpy as np

from maas.errors import InvalidInput
from maas.protocol.proto import grpc_service_pb2 as pb
from maas.protocol.types import InferRequest, InferResponse, InferTensor, RequestedOutput
from maas.signature import V2_TO_NUMPY

# The InferTensorContents field that carries each v2 datatype (FP16 travels only as raw bytes).
CONTENTS_FIELD: dict[str, str] = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}
# The numpy dtype of each InferTensorContents field.
FIELD_DTYPE: dict[str, str] = {
    "bool_contents": "bool",
    "int_contents": "int32",
    "int64_contents": "int64",
    "uint_contents": "uint32",
    "uint64_contents": "uint64",
    "fp32_contents": "float32",
    "fp64_contents": "float64",
}
# Raw contents are little-endian whatever the machine.
RAW_DTYPE: dict[str, np.dtype[Any]] = {
    name: np.dtype(numpy_name).newbyteorder("<")
    for name, numpy_name in V2_TO_NUMPY.items()
    if name != "BYTES"
}
_LENGTH = struct.Struct("<I")  # the 4-byte length before each BYTES element in raw contents
_INT64_MAX = 2**63 - 1


def decode_infer_request(msg: pb.ModelInferRequest) -> InferRequest:
    """Turn a `ModelInferRequest` into an `InferRequest` with numpy tensors.

    Raises:
        InvalidInput: an unknown datatype, a negative dimension, contents whose element count or
            byte length does not match the shape, or raw contents not given for every input.
    """
    if not msg.model_name:
        raise InvalidInput("model_name is empty; name the model to run")
    raws = msg.raw_input_contents
    if raws and len(raws) != len(msg.inputs):
        raise InvalidInput(
            f"raw_input_contents has {len(raws)} entries for {len(msg.inputs)} inputs; "
            "send raw contents for every input or for none"
        )
    inputs = tuple(
        _decode_tensor(tensor, raws[i] if raws else None) for i, tensor in enumerate(msg.inputs)
    )
    outputs = tuple(_decode_requested(o) for o in msg.outputs) if msg.outputs else None
    return InferRequest(
        model_name=msg.model_name,
        model_version=msg.model_version or None,
        inputs=inputs,
        outputs=outputs,
        id=msg.id or None,
        parameters=decode_parameters(msg.parameters),
    )


def encode_infer_response(response: InferResponse, *, raw: bool) -> pb.ModelInferResponse:
    """Build a `ModelInferResponse`; `raw` answers in `raw_output_contents` (what a raw request
    gets). Outputs whose datatype has no typed field (FP16) force raw contents for all outputs."""
    msg = pb.ModelInferResponse(
        model_name=response.model_name,
        model_version=response.model_version,
        id=response.id or "",
    )
    if response.parameters:
        encode_parameters(msg.parameters, response.parameters)
    use_raw = answers_raw(response, raw=raw)
    for tensor in response.outputs:
        out = msg.outputs.add(name=tensor.name, datatype=tensor.datatype, shape=tensor.shape)
        if tensor.parameters:
            encode_parameters(out.parameters, tensor.parameters)
        if use_raw:
            msg.raw_output_contents.append(tensor_to_raw(tensor))
        else:
            _fill_contents(out.contents, tensor)
    return msg


def answers_raw(response: InferResponse, *, raw: bool) -> bool:
    """Whether the response goes in `raw_output_contents`: asked for, or forced by an output
    whose datatype has no typed contents field (FP16)."""
    return raw or any(t.datatype not in CONTENTS_FIELD for t in response.outputs)


def tensor_to_raw(tensor: InferTensor) -> bytes:
    """The raw-contents bytes of a tensor: little-endian row-major, or length-prefixed BYTES."""
    if tensor.datatype == "BYTES":
        return b"".join(_LENGTH.pack(len(b)) + b for b in map(_as_bytes, tensor.data.flat))
    dtype = RAW_DTYPE.get(tensor.datatype)
    if dtype is None:
        raise InvalidInput(f"output {tensor.name!r} has unknown datatype {tensor.datatype!r}")
    data = tensor.data if tensor.data.dtype == dtype else tensor.data.astype(dtype)
    return data.tobytes()


def decode_parameters(params: Mapping[str, pb.InferParameter]) -> dict[str, Any]:
    """A parameters map as plain Python values (bool, int, str, float)."""
    if not params:
        return {}
    decoded: dict[str, Any] = {}
    for key, param in params.items():
        which = param.WhichOneof("parameter_choice")
        decoded[key] = getattr(param, which) if which else None
    return decoded


def encode_parameters(
    target: MutableMapping[str, pb.InferParameter], params: Mapping[str, Any]
) -> None:
    """Fill a parameters map from plain Python values; other values travel as strings."""
    for key, value in params.items():
        param = target[key]
        if isinstance(value, bool):
            param.bool_param = value
        elif isinstance(value, int):
            if value > _INT64_MAX:
                param.uint64_param = value
            else:
                param.int64_param = value
        elif isinstance(value, float):
            param.double_param = value
        else:
            param.string_param = str(value)


def _decode_requested(msg: pb.ModelInferRequest.InferRequestedOutputTensor) -> RequestedOutput:
    params = decode_parameters(msg.parameters)
    classification = params.pop("classification", 0)
    binary_data = params.pop("binary_data", None)
    if isinstance(classification, bool) or not isinstance(classification, int):
        raise InvalidInput(
            f"output {msg.name!r}: parameter 'classification' must be an integer, "
            f"got {classification!r}"
        )
    return RequestedOutput(
        name=msg.name,
        binary_data=binary_data if isinstance(binary_data, bool) else None,
        classification=classification,
        parameters=params,
    )


def _decode_tensor(msg: pb.ModelInferRequest.InferInputTensor, raw: bytes | None) -> InferTensor:
    name, datatype = msg.name, msg.datatype
    if datatype not in V2_TO_NUMPY:
        raise InvalidInput(
            f"input {name!r} has unknown datatype {datatype!r}; expected one of "
            f"{', '.join(V2_TO_NUMPY)}"
        )
    shape = tuple(msg.shape)
    if any(d < 0 for d in shape):
        raise InvalidInput(f"input {name!r} has shape {list(shape)}; dimensions must be >= 0")
    count = math.prod(shape)
    if raw is not None:
        if msg.HasField("contents"):
            raise InvalidInput(f"input {name!r} has both contents and raw_input_contents")
        data = _raw_to_array(name, datatype, count, raw)
    else:
        data = _contents_to_array(name, datatype, count, msg.contents)
    try:
        shaped = data.reshape(shape)
    except ValueError as err:  # e.g. [0, 2**62, 2**62]: no elements, yet too big for numpy
        raise InvalidInput(f"input {name!r} has shape {list(shape)}, which is too large") from err
    return InferTensor(
        name=name,
        datatype=datatype,
        shape=shape,
        data=shaped,
        parameters=decode_parameters(msg.parameters),
    )


def _raw_to_array(name: str, datatype: str, count: int, raw: bytes) -> np.ndarray:
    if datatype == "BYTES":
        return _split_bytes(name, count, raw)
    dtype = RAW_DTYPE[datatype]
    expected = count * dtype.itemsize
    if len(raw) != expected:
        raise InvalidInput(
            f"input {name!r}: raw contents hold {len(raw)} bytes; {datatype} with "
            f"{count} elements needs {expected}"
        )
    return np.frombuffer(raw, dtype=dtype)


def _contents_to_array(
    name: str, datatype: str, count: int, contents: pb.InferTensorContents
) -> np.ndarray:
    field = CONTENTS_FIELD.get(datatype)
    if field is None:
        raise InvalidInput(
            f"input {name!r}: {datatype} has no typed contents field; send it in raw_input_contents"
        )
    values: Sequence[Any] = getattr(contents, field)
    if len(values) != count:
        raise InvalidInput(
            f"input {name!r}: {field} holds {len(values)} elements; shape needs {count}"
        )
    if datatype == "BYTES":
        data = np.empty(count, dtype=object)
        data[:] = list(values)
        return data
    wide = np.array(values, dtype=FIELD_DTYPE[field])
    target = np.dtype(V2_TO_NUMPY[datatype])
    if wide.dtype == target:
        return wide
    # INT8/INT16 travel in int32 and UINT8/UINT16 in uint32 fields: refuse what would wrap.
    limits = np.iinfo(target)
    if wide.size and (wide.min() < limits.min or wide.max() > limits.max):
        raise InvalidInput(
            f"input {name!r}: {field} holds values outside {datatype}'s range "
            f"[{limits.min}, {limits.max}]"
        )
    return wide.astype(target)


def _split_bytes(name: str, count: int, raw: bytes) -> np.ndarray:
    data = np.empty(count, dtype=object)
    view = memoryview(raw)
    offset = 0
    for i in range(count):
        if offset + _LENGTH.size > len(raw):
            raise InvalidInput(f"input {name!r}: raw BYTES contents end before element {i}")
        (length,) = _LENGTH.unpack_from(raw, offset)
        offset += _LENGTH.size
        if offset + length > len(raw):
            raise InvalidInput(f"input {name!r}: raw BYTES element {i} runs past the end")
        data[i] = bytes(view[offset : offset + length])
        offset += length
    if offset != len(raw):
        raise InvalidInput(
            f"input {name!r}: raw BYTES contents have {len(raw) - offset} bytes after "
            f"{count} elements"
        )
    return data


def _fill_contents(contents: pb.InferTensorContents, tensor: InferTensor) -> None:
    values = getattr(contents, CONTENTS_FIELD[tensor.datatype])
    if tensor.datatype == "BYTES":
        values.extend(_as_bytes(v) for v in tensor.data.flat)
    else:
        values.extend(tensor.data.ravel().tolist())


def _as_bytes(value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    return str(value).encode()
