"""`maas register`, `maas models ...` and `maas alias` as a user runs them: output, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import run_cli
from onnx import TensorProto, helper, numpy_helper

from maas.config import load_settings
from maas.registry import Registry


def tiny_classifier() -> bytes:
    """probabilities = Softmax(x @ W + b), x: float32 [N, 2], 2 classes."""
    weight = numpy_helper.from_array(np.array([[1, -1], [-1, 1]], dtype=np.float32), "W")
    bias = numpy_helper.from_array(np.zeros(2, dtype=np.float32), "b")
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "W"], ["xw"]),
            helper.make_node("Add", ["xw", "b"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1),
        ],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 2])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 2])],
        initializer=[weight, bias],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


@pytest.fixture
def onnx_file(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.onnx"
    path.write_bytes(tiny_classifier())
    return path


@pytest.fixture
def registered(maas_home: Path, onnx_file: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """Two versions of "tiny", registered through the CLI."""
    for _ in range(2):
        result = run_cli(capsys, "register", "--onnx", str(onnx_file), "--name", "tiny")
        assert result.code == 0, result.err
    return maas_home


@pytest.mark.parametrize(
    "command",
    [
        ["register"],
        ["models"],
        ["models", "list"],
        ["models", "show"],
        ["models", "versions"],
        ["models", "download"],
        ["models", "delete"],
        ["models", "history"],
        ["alias"],
    ],
)
def test_every_command_has_help(capsys: pytest.CaptureFixture[str], command: list[str]) -> None:
    result = run_cli(capsys, *command, "--help")
    assert result.code == 0
    assert "Usage: maas" in result.out
    assert command[-1] in result.out


def test_register_onnx_file_json(
    maas_home: Path, onnx_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run_cli(
        capsys,
        "register",
        "--onnx",
        str(onnx_file),
        "--name",
        "tiny",
        "--labels",
        "no,yes",
        "--json",
    )
    assert result.code == 0, result.err
    doc = result.json()
    assert (doc["name"], doc["version"], doc["labels"]) == ("tiny", 1, ["no", "yes"])
    assert doc["signature"]["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 2]}]
    with Registry.from_settings(load_settings()) as registry:
        assert registry.read_artifact(registry.get("tiny")) == onnx_file.read_bytes()
        entry = registry.audit_log()[-1]
        assert (entry.action, entry.target, entry.source) == ("register", "tiny@1", "cli")


def test_list_show_versions(registered: Path, capsys: pytest.CaptureFixture[str]) -> None:
    listed = run_cli(capsys, "models", "list", "--json").json()
    assert listed == [{"name": "tiny", "latest_version": 2, "version_count": 2, "aliases": {}}]
    shown = run_cli(capsys, "models", "show", "tiny@1", "--json").json()
    assert (shown["name"], shown["version"]) == ("tiny", 1)
    assert run_cli(capsys, "models", "show", "tiny", "--json").json()["version"] == 2
    versions = run_cli(capsys, "models", "versions", "tiny", "--json").json()
    assert [v["version"] for v in versions] == [1, 2]
    table = run_cli(capsys, "models", "list")
    assert table.code == 0
    assert "tiny" in table.out
    detail = run_cli(capsys, "models", "show", "tiny@2")
    assert "tiny@2" in detail.out
    assert "FP32" in detail.out


def test_alias_then_history(registered: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = run_cli(capsys, "alias", "tiny", "production", "1", "--json")
    assert result.code == 0, result.err
    assert result.json() == {
        "name": "tiny",
        "alias": "production",
        "version": 1,
        "aliases": ["production"],
    }
    run_cli(capsys, "alias", "tiny", "production", "2")
    assert run_cli(capsys, "models", "show", "tiny@production", "--json").json()["version"] == 2
    history = run_cli(capsys, "models", "history", "tiny", "--json").json()
    assert [(e["old_version"], e["new_version"]) for e in history] == [(None, 1), (1, 2)]


def test_download_writes_a_registrable_folder(
    registered: Path, onnx_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "out"
    result = run_cli(capsys, "models", "download", "tiny@1", "--to", str(target), "--json")
    assert result.code == 0, result.err
    assert result.json()["files"] == ["manifest.json", "model.onnx"]
    assert (target / "model.onnx").read_bytes() == onnx_file.read_bytes()
    manifest = json.loads((target / "manifest.json").read_text())
    assert (manifest["name"], manifest["version"]) == ("tiny", 1)
    again = run_cli(capsys, "register", str(target), "--name", "tiny-copy", "--json").json()
    assert (again["name"], again["version"]) == ("tiny-copy", 1)
    assert again["digest"] == manifest["digest"]


def test_delete_refuses_aliased_version_then_forces(
    registered: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_cli(capsys, "alias", "tiny", "production", "1")
    refused = run_cli(capsys, "models", "delete", "tiny@1")
    assert refused.code == 2
    assert refused.err.startswith("error: tiny@1 is the target of alias(es) production")
    assert refused.err.count("\n") == 1
    forced = run_cli(capsys, "models", "delete", "tiny@1", "--force", "--json")
    assert forced.code == 0
    assert forced.json() == {"deleted": "tiny@1"}
    versions = run_cli(capsys, "models", "versions", "tiny", "--json").json()
    assert [v["version"] for v in versions] == [2]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["models", "show", "nope"], 'error: no model named "nope"; models: tiny'),
        (["models", "show", "tiny@9"], 'error: model "tiny" has no version 9; versions: 1-2'),
        (["models", "show", "Bad"], "error: invalid model name 'Bad'"),
        (["models", "delete", "tiny@latest"], "error: delete needs an explicit version number"),
        (["register"], "error: give either EXPORT_DIR or --onnx FILE"),
        (["alias", "tiny", "production", "5"], 'error: model "tiny" has no version 5'),
    ],
)
def test_client_errors_exit_2_with_one_line(
    registered: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    result = run_cli(capsys, *args)
    assert result.code == 2
    assert result.err.startswith(message)
    assert result.err.count("\n") == 1
    assert result.out == ""


def test_register_refuses_broken_onnx(
    maas_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    result = run_cli(capsys, "register", "--onnx", str(broken), "--name", "broken")
    assert result.code == 2
    assert f"ONNX file {broken} failed to load or run in onnxruntime" in result.err
    assert run_cli(capsys, "models", "list", "--json").json() == []
