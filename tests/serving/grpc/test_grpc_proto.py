"""The generated code is what `make proto` makes, and its messages are wire-compatible with the
ones tritonclient (and so perf_analyzer) uses."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf import descriptor
from tritonclient.grpc import model_config_pb2 as triton_config
from tritonclient.grpc import service_pb2 as triton_service

from maas.protocol.proto import grpc_service_pb2 as pb

SRC = Path(__file__).resolve().parents[3] / "src"
PROTO = "maas/protocol/proto/grpc_service.proto"
GENERATED = ("grpc_service_pb2.py", "grpc_service_pb2.pyi", "grpc_service_pb2_grpc.py")


def triton_message(full_name: str) -> descriptor.Descriptor:
    name = full_name.removeprefix("inference.")
    for module in (triton_service, triton_config):
        found = module.DESCRIPTOR.message_types_by_name.get(name.split(".")[0])
        if found is not None:
            for part in name.split(".")[1:]:
                found = found.nested_types_by_name[part]
            return found
    raise KeyError(full_name)


def our_messages() -> list[descriptor.Descriptor]:
    found: list[descriptor.Descriptor] = []

    def walk(message: descriptor.Descriptor) -> None:
        found.append(message)
        for nested in message.nested_types:
            walk(nested)

    for message in pb.DESCRIPTOR.message_types_by_name.values():
        walk(message)
    return found


@pytest.mark.parametrize("message", our_messages(), ids=lambda m: m.full_name)
def test_fields_match_tritonclient(message: descriptor.Descriptor) -> None:
    theirs = triton_message(message.full_name)
    for field in message.fields:
        other = theirs.fields_by_number[field.number]
        assert (field.name, field.type, field.is_repeated) == (
            other.name,
            other.type,
            other.is_repeated,
        )
        if field.message_type is not None:
            assert field.message_type.full_name == other.message_type.full_name
        if field.enum_type is not None:
            assert field.enum_type.full_name == other.enum_type.full_name
            theirs_values = {v.name: v.number for v in other.enum_type.values}
            assert {v.name: v.number for v in field.enum_type.values}.items() <= (
                theirs_values.items()
            )


def test_service_methods_match_tritonclient() -> None:
    ours = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    theirs = triton_service.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    assert ours.full_name == theirs.full_name == "inference.GRPCInferenceService"
    for method in ours.methods:
        other = theirs.methods_by_name[method.name]
        assert method.input_type.full_name == other.input_type.full_name
        assert method.output_type.full_name == other.output_type.full_name
        assert (method.client_streaming, method.server_streaming) == (
            other.client_streaming,
            other.server_streaming,
        )


def test_generated_code_is_up_to_date(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable, "-m", "grpc_tools.protoc", f"-I{SRC}", f"--python_out={tmp_path}",
            f"--pyi_out={tmp_path}", f"--grpc_python_out={tmp_path}", str(SRC / PROTO),
        ],
        check=True,
        timeout=60,
    )  # fmt: skip
    out = tmp_path / "maas" / "protocol" / "proto"
    # `make proto` moves the messages into a private descriptor pool; do the same here.
    pb2 = out / "grpc_service_pb2.py"
    pb2.write_text(
        pb2.read_text().replace(
            "_descriptor_pool.Default().AddSerializedFile",
            "_descriptor_pool.DescriptorPool().AddSerializedFile",
        )
    )
    committed = SRC / "maas" / "protocol" / "proto"
    for name in GENERATED:
        assert (out / name).read_text() == (committed / name).read_text(), f"run make proto: {name}"
