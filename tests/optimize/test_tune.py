"""`maas tune`: profiling a trained model, the budget, and the serve file it writes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from maas.cli import main
from maas.config import ModelServeConfig, Settings, load_serve_file
from maas.errors import InvalidInput
from maas.optimize.source import load_source
from maas.optimize.tune import hardware_profile, tune, write_serve_file
from maas.registry import Registry
from maas.registry.versions import ModelVersion

pytestmark = pytest.mark.slow  # the trained model is built once per session


@pytest.fixture
def model(
    registry: Registry, trained_mlp: tuple[Settings, ModelVersion]
) -> tuple[bytes, np.ndarray]:
    mv = trained_mlp[1]
    source = load_source(registry, mv.name, mv.version)
    return source.onnx_bytes, source.test_x


def test_best_point_fits_the_budget_and_is_the_fastest_that_does(
    model: tuple[bytes, np.ndarray], trained_mlp: tuple[Settings, ModelVersion]
) -> None:
    onnx_bytes, rows = model
    result = tune(
        onnx_bytes,
        rows,
        trained_mlp[1].ref,
        1000.0,
        batches=(1, 4, 16),
        max_instances=2,
        duration_s=0.05,
    )
    assert [(p.instances, p.batch) for p in result.points] == [
        (i, b) for i in (1, 2) for b in (1, 4, 16)
    ]
    assert result.best in result.points
    assert result.best.est_p99_ms <= 1000.0
    assert result.best.throughput_rows_s == max(p.throughput_rows_s for p in result.points)
    for p in result.points:
        assert p.est_p99_ms == pytest.approx(
            2 * p.call_p99_ms + p.max_queue_delay_us / 1000, abs=1e-3
        )
        assert p.call_p50_ms <= p.call_p99_ms
    assert result.profile == hardware_profile()
    assert result.profile.cores >= 1


def test_an_impossible_budget_is_refused(
    model: tuple[bytes, np.ndarray], trained_mlp: tuple[Settings, ModelVersion]
) -> None:
    onnx_bytes, rows = model
    with pytest.raises(InvalidInput, match=r"no configuration of .* meets p99"):
        tune(
            onnx_bytes,
            rows,
            trained_mlp[1].ref,
            1e-6,
            batches=(1, 2),
            max_instances=1,
            duration_s=0.02,
        )
    with pytest.raises(InvalidInput, match="must be positive"):
        tune(onnx_bytes, rows, trained_mlp[1].ref, 0.0)


def test_serve_file_gets_the_model_entry_and_keeps_the_rest(
    tmp_path: Path, model: tuple[bytes, np.ndarray], trained_mlp: tuple[Settings, ModelVersion]
) -> None:
    onnx_bytes, rows = model
    mv = trained_mlp[1]
    path = tmp_path / "serve.yaml"
    path.write_text("max_request_bytes: 4096\nmodels:\n  other: {ref: production, instances: 3}\n")
    result = tune(
        onnx_bytes,
        rows,
        mv.ref,
        1000.0,
        batches=(1, 8),
        max_instances=1,
        duration_s=0.02,
    )
    written = write_serve_file(path, mv.name, result)
    again = load_serve_file(path)
    assert again == written
    assert again.max_request_bytes == 4096
    assert again.models["other"] == ModelServeConfig(ref="production", instances=3)
    entry = again.models[mv.name]
    assert entry.ref == str(mv.version)
    assert entry.max_batch_size == result.best.batch
    assert entry.instances == result.best.instances
    assert entry.max_queue_delay_us == result.best.max_queue_delay_us
    assert path.read_text().startswith(f"# {mv.name}: tuned by `maas tune {mv.ref} --p99-ms 1000`")


def test_cli_prints_json_and_writes_the_serve_file(
    home: Path,
    trained_mlp: tuple[Settings, ModelVersion],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("MAAS_HOME", str(home))
    mv = trained_mlp[1]
    serve = tmp_path / "serve.yaml"
    capsys.readouterr()
    main(
        [
            "tune",
            mv.ref,
            "--p99-ms",
            "1000",
            "--max-instances",
            "1",
            "--write",
            str(serve),
            "--json",
        ]
    )
    doc = json.loads(capsys.readouterr().out)
    assert doc["ref"] == mv.ref
    assert len(doc["points"]) == 7
    assert load_serve_file(serve).models[mv.name].max_batch_size == doc["best"]["batch"]
    assert doc["stored"] is True
    with Registry.from_settings(trained_mlp[0]) as registry:
        stored = registry.get_serving_config(mv.name, mv.version, hardware_profile().key)
    assert stored is not None
    assert stored.config["max_batch_size"] == doc["best"]["batch"]
    assert stored.config["instances"] == doc["best"]["instances"] == 1
    assert stored.config["p99_budget_ms"] == 1000.0


def test_cli_no_store_leaves_the_registry_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from onnx_models import build_classifier

    home = tmp_path / "home"
    monkeypatch.setenv("MAAS_HOME", str(home))
    classifier = build_classifier(4, 3)
    with Registry.from_settings(Settings(home=home)) as registry:
        registry.register("lin", classifier.model_bytes, signature=classifier.signature)
    args = ["tune", "lin@1", "--p99-ms", "1000", "--max-instances", "1", "--json"]
    main([*args, "--no-store"])
    assert json.loads(capsys.readouterr().out)["stored"] is False
    with Registry.from_settings(Settings(home=home)) as registry:
        assert registry.get_serving_config("lin", 1, hardware_profile().key) is None
    main(args)
    capsys.readouterr()
    with Registry.from_settings(Settings(home=home)) as registry:
        assert registry.get_serving_config("lin", 1, hardware_profile().key) is not None
