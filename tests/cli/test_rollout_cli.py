"""`maas route`, `maas rollback` and `maas export-repo` as a user runs them: output, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import run
from onnx_models import build_classifier

from maas.config import Settings
from maas.registry import Registry


@pytest.fixture
def digits(settings: Settings) -> Settings:
    model = build_classifier(4, 3, seed=0)
    with Registry.from_settings(settings) as registry:
        for _ in range(2):
            registry.register(
                "digits", model.model_bytes, signature=model.signature, labels=model.labels
            )
        registry.set_alias("digits", "production", 1)
        registry.set_alias("digits", "canary", 2)
    return settings


def test_route_is_set_shown_in_models_show_and_cleared(
    digits: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(
        capsys, "route", "digits", "production=90", "canary=10", "--max-error-rate", "0.05"
    )
    assert code == 0
    assert out.strip() == "digits: production=90 canary=10"
    code, out, _ = run(capsys, "route", "digits", "--json")
    doc = json.loads(out)
    assert doc["split"] == {"production": 90, "canary": 10}
    assert doc["guard"]["max_error_rate"] == 0.05
    _, out, _ = run(capsys, "models", "show", "digits@production", "--json")
    assert json.loads(out)["route"]["split"] == {"production": 90, "canary": 10}
    code, out, _ = run(capsys, "route", "digits", "--clear")
    assert (code, out.strip()) == (0, "digits: route cleared")
    _, out, _ = run(capsys, "route", "digits")
    assert out.strip() == "digits: no route (production)"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["production=90", "staging=10"], "staging"),
        (["production=ninety"], "not a whole number"),
        (["--max-p99-ms", "50"], "give the split"),
    ],
)
def test_bad_routes_exit_2_with_one_line(
    digits: Settings, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, out, err = run(capsys, "route", "digits", *args)
    assert code == 2
    assert out == ""
    assert message in err
    assert len(err.strip().splitlines()) == 1


def test_rollback_moves_production_back(
    digits: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys, "alias", "digits", "production", "2")
    code, out, _ = run(capsys, "rollback", "digits")
    assert (code, out.strip()) == (0, "digits@production: 2 -> 1")
    code, _, err = run(capsys, "rollback", "digits", "--alias", "canary")
    assert code == 2
    assert "no earlier version" in err


def test_export_repo_writes_a_triton_repository(
    digits: Settings, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out_dir = tmp_path / "triton"
    code, out, _ = run(capsys, "export-repo", str(out_dir), "--model", "digits", "--json")
    assert code == 0
    assert json.loads(out) == [
        {"name": "digits", "path": str(out_dir / "digits"), "versions": [1, 2]}
    ]
    assert (out_dir / "digits" / "2" / "model.onnx").is_file()
    assert 'platform: "onnxruntime_onnx"' in (out_dir / "digits" / "config.pbtxt").read_text()
    code, _, err = run(capsys, "export-repo", str(out_dir), "--model", "digits")
    assert code == 2
    assert "exists" in err
