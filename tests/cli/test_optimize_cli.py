"""`maas optimize` as a user runs it: JSON output, the table, exit codes of refusals and misuse."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import run
from trained_models import MLP_SPEC, train_into

from maas.registry import Registry
from maas.registry.versions import ModelVersion


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ModelVersion]:
    home = tmp_path_factory.mktemp("optimize-cli-home")
    _, version = train_into(home, MLP_SPEC)
    return home, version


@pytest.fixture
def env(home: tuple[Path, ModelVersion], monkeypatch: pytest.MonkeyPatch) -> ModelVersion:
    monkeypatch.setenv("MAAS_HOME", str(home[0]))
    monkeypatch.setenv("COLUMNS", "200")
    return home[1]


@pytest.mark.slow
def test_size_objective_prints_json_with_the_new_version(
    env: ModelVersion, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(
        capsys,
        "optimize",
        f"{env.name}@1",
        "--quantize",
        "static",
        "--objective",
        "size",
        "--max-accuracy-drop",
        "2",
        "--calibration-samples",
        "64",
        "--json",
    )
    assert code == 0
    doc = json.loads(out)
    assert doc["parent"] == f"{env.name}@1"
    assert doc["registered"].startswith(f"{env.name}@")
    assert doc["metrics"]["size_bytes"] < env.size_bytes
    assert {c["variant"] for c in doc["candidates"]} >= {"int8", "int8-compact"}
    with _registry(env) as registry:
        child = registry.get(env.name, int(doc["registered"].split("@")[1]))
    assert child.lineage["optimization"]["calibration"]["samples"] == 64


def _registry(_: ModelVersion) -> Registry:
    from maas.config import load_settings

    return Registry.from_settings(load_settings())


@pytest.mark.slow
def test_unmeetable_gate_exits_1_with_both_accuracies(
    env: ModelVersion, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(
        capsys, "optimize", f"{env.name}@1", "--quantize", "static", "--max-accuracy-drop", "-50"
    )
    assert code == 1
    assert out == ""
    assert err.startswith("error: accuracy gate failed")
    assert f"{env.metrics['test_accuracy'] * 100:.2f}%" in err


@pytest.mark.slow
def test_table_output_names_the_winner_or_why_fp32_was_kept(
    env: ModelVersion, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(
        capsys, "optimize", f"{env.name}@1", "--quantize", "dynamic", "--max-accuracy-drop", "5"
    )
    assert code == 0
    assert "int8-dynamic" in out
    assert ("kept the parent: nothing new registered" in out) or ("registered " in out)
    assert ("wins on latency" in out) or ("keep fp32" in out)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "exactly one of"),
        (("--quantize", "static", "--prune", "0.5"), "exactly one of"),
        (("--prune", "1.5"), "between 0 and 1"),
    ],
)
def test_misuse_exits_2(
    maas_home: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], message: str
) -> None:
    code, _, err = run(capsys, "optimize", "tiny-mlp@1", *args)
    assert code == 2
    assert message in err


def test_unknown_model_exits_2(maas_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "optimize", "no-such-model@1", "--quantize", "static")
    assert code == 2
    assert "no-such-model" in err
