"""`maas train` and `maas --help` as a user meets them: help text, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from maas.cli import COMMANDS


def maas(*args: str, home: Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MAAS_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "maas", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )


def test_top_level_help_lists_every_command(tmp_path: Path) -> None:
    result = maas("--help", home=tmp_path)
    assert result.returncode == 0
    for name in COMMANDS:
        assert name in result.stdout


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_has_help(tmp_path: Path, command: str) -> None:
    result = maas(command, "--help", home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Usage:" in result.stdout
    assert len(result.stdout.splitlines()) > 3


@pytest.mark.parametrize(
    ("spec_text", "fragment"),
    [
        ("name: x\ndata: {source: digits}\ntrain: {epochs: ten}\n", "train.epochs:"),
        ("name: x\ndata: {source: digits}\nmodle: {kind: cnn}\n", "modle: unknown key"),
        ("name: x\ndata: {source: nosuchset}\n", "nosuchset"),
        ("name: x\ndata: {source: missing.csv, label: y}\n", "missing.csv"),
        ("name: x\ndata: {source: bad.csv, label: species}\n", 'label column "species"'),
        ("name: x\ndata: {source: ragged.csv, label: y}\n", "ragged.csv"),
    ],
)
def test_bad_specs_and_data_exit_2_with_one_line(
    tmp_path: Path, spec_text: str, fragment: str
) -> None:
    (tmp_path / "bad.csv").write_text("a,b,kind\n1,2,x\n3,4,y\n")
    (tmp_path / "ragged.csv").write_text("a,b,y\n1,2,0\n3,4\n5,6,1\n")
    spec = tmp_path / "spec.yaml"
    spec.write_text(spec_text)
    result = maas("train", str(spec), "--quiet", home=tmp_path / "home")
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert fragment in lines[0]
    assert "Traceback" not in result.stderr


def test_missing_spec_file(tmp_path: Path) -> None:
    result = maas("train", str(tmp_path / "nope.yaml"), home=tmp_path)
    assert result.returncode == 2
    assert "cannot read" in result.stderr


@pytest.mark.slow
def test_train_json_output_on_a_small_table(tmp_path: Path) -> None:
    spec = tmp_path / "iris.yaml"
    spec.write_text("name: iris\ndata: {source: iris}\ntrain: {epochs: 3}\n")
    result = maas("train", str(spec), "--json", home=tmp_path / "home")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["version"]["name"] == "iris"
    assert doc["version"]["version"] == 1
    assert 0.0 <= doc["metrics"]["test_accuracy"] <= 1.0
    assert Path(doc["export_dir"], "model.onnx").exists()
