"""`maas models show` and `maas models versions`: size, parameters, precision and speed."""

from __future__ import annotations

from pathlib import Path

import pytest
from onnx_models import build_classifier
from test_registry_cli import run_cli

from maas.config import load_settings
from maas.registry import Registry

FP32_METRICS = {"parameters": 15.0, "test_accuracy": 0.93, "size_bytes": 1000.0}
INT8_METRICS = {
    "parameters": 15.0,
    "test_accuracy": 0.92,
    "latency_ms_b1": 0.021,
    "latency_ms_b32": 0.118,
    "throughput_b32": 271_186.0,
}


@pytest.fixture
def versions(maas_home: Path) -> Path:
    """digits@1 trained (fp32), digits@2 its int8 child with speed figures, digits@3 a user's."""
    model = build_classifier(4, 3)
    with Registry.from_settings(load_settings()) as registry:
        register = lambda **kw: registry.register(  # noqa: E731
            "digits", model.model_bytes, signature=model.signature, **kw
        )
        register(metrics=FP32_METRICS, lineage={"spec": {"name": "digits"}})
        register(metrics=INT8_METRICS, lineage={"parent": "digits@1", "precision": "int8"})
        register()
        registry.set_serving_config(
            "digits", 2, "Test CPU/8", {"max_batch_size": 16, "instances": 2}
        )
    return maas_home


def test_show_json_lists_every_versions_figures(
    versions: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = run_cli(capsys, "models", "show", "digits@2", "--json").json()
    size = doc["size_bytes"]
    assert doc["figures"] == {
        "ref": "digits@2",
        "size_bytes": size,
        "parameters": 15,
        "precision": "int8",
        "latency_ms_b1": 0.021,
        "latency_ms_b32": 0.118,
        "throughput_b32": 271_186.0,
        "test_accuracy": 0.92,
    }
    by_ref = {f["ref"]: f for f in doc["versions"]}
    assert list(by_ref) == ["digits@1", "digits@2", "digits@3"]
    assert by_ref["digits@1"]["precision"] == "fp32"
    assert by_ref["digits@1"]["latency_ms_b1"] is None  # never measured: not guessed
    assert by_ref["digits@3"]["precision"] is None
    assert by_ref["digits@3"]["parameters"] is None
    [tuned] = doc["serving_configs"]
    assert tuned["hardware_profile"] == "Test CPU/8"
    assert tuned["config"] == {"max_batch_size": 16, "instances": 2}


def test_versions_json_and_tables_carry_the_figures(
    versions: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "160")  # a wide terminal: rich wraps cells in narrow ones
    listed = run_cli(capsys, "models", "versions", "digits", "--json").json()
    assert [v["figures"]["precision"] for v in listed] == ["fp32", "int8", None]
    assert listed[1]["figures"]["throughput_b32"] == 271_186.0
    table = run_cli(capsys, "models", "versions", "digits")
    assert table.code == 0, table.err
    assert "int8" in table.out
    assert "271,186" in table.out
    shown = run_cli(capsys, "models", "show", "digits@2")
    assert shown.code == 0, shown.err
    assert "0.021" in shown.out
    assert "tuned for Test CPU/8: max_batch_size 16, instances 2" in shown.out
