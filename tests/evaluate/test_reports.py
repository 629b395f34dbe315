"""`evaluate_versions` on a trained MLP and its int8 child: numbers, JSON, and the HTML report."""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread
from trained_models import TrainedHome

from maas.cli import main
from maas.evaluate.html import render_html
from maas.evaluate.reports import count_onnx_parameters, evaluate_versions
from maas.evaluate.timing import open_session
from maas.optimize.source import load_source
from maas.registry import Registry, parse_ref

pytestmark = pytest.mark.slow


def test_two_versions_side_by_side(registry: Registry, trained_home: TrainedHome) -> None:
    parent, child = trained_home.parent, trained_home.child
    report = evaluate_versions(
        registry, [parse_ref(parent.ref), parse_ref(child.ref)], latency_runs=50
    )
    first, second = report.versions
    assert (first.ref, second.ref) == (parent.ref, child.ref)
    assert (first.precision, second.precision) == ("fp32", "int8")
    # Accuracy is the one recorded at registration, recomputed on the reproduced test split.
    assert first.quality.accuracy == pytest.approx(parent.metrics["test_accuracy"])
    assert second.quality.accuracy == pytest.approx(child.metrics["test_accuracy"])
    source = load_source(registry, parent.name, parent.version)
    assert first.quality.rows == len(source.splits.test_y)
    assert int(first.quality.confusion.sum()) == first.quality.rows
    assert first.size_bytes == parent.size_bytes > second.size_bytes
    assert first.parameters == 64 * 48 + 48 + 48 * 24 + 24 + 24 * 10 + 10 + 2 * 64
    assert first.latency_b1.runs == 50
    assert first.latency_b1.p50_ms <= first.latency_b1.p99_ms
    assert first.best_batch.batch in (1, 8, 32, 128)
    assert 0.0 <= first.quality.ece <= 1.0
    assert first.peak_memory_bytes >= 0
    doc = report.to_dict()
    assert doc["versions"][0]["accuracy"] == first.quality.accuracy
    assert doc["versions"][1]["latency_ms_b1"]["p99"] == second.latency_b1.p99_ms


def test_int8_parameters_count_weights_not_scales(
    registry: Registry, trained_home: TrainedHome
) -> None:
    parent_bytes = registry.read_artifact(trained_home.parent)
    child_bytes = registry.read_artifact(trained_home.child)
    assert count_onnx_parameters(child_bytes) == count_onnx_parameters(parent_bytes)
    session = open_session(child_bytes)
    assert session.get_inputs()[0].name == "input"


def _pngs(html: str) -> list[np.ndarray]:
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    return [imread(io.BytesIO(base64.b64decode(data)), format="png") for data in images]


def test_cli_writes_json_and_a_self_contained_html_report(
    trained_home: TrainedHome,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    out = tmp_path / "report"
    monkeypatch.setenv("MAAS_HOME", str(trained_home.home))
    capsys.readouterr()
    main(["evaluate", trained_home.parent.ref, trained_home.child.ref, "--out", str(out), "--json"])
    printed = json.loads(capsys.readouterr().out)
    written = json.loads((out / "report.json").read_text())
    assert printed == written
    assert [v["ref"] for v in written["versions"]] == [
        trained_home.parent.ref,
        trained_home.child.ref,
    ]
    html = (out / "report.html").read_text()
    assert "http://" not in html
    assert "https://" not in html  # opens offline: nothing to fetch
    images = _pngs(html)
    assert len(images) == 3 + 2  # trade-off, latency, calibration + one confusion matrix each
    for image in images:
        assert image.shape[0] > 100
        assert image.shape[1] > 100
        assert float(image[..., :3].std()) > 0.01  # something was drawn
    for version in written["versions"]:
        assert f"{version['accuracy'] * 100:.2f}%" in html


def test_render_html_escapes_names(registry: Registry, trained_home: TrainedHome) -> None:
    report = evaluate_versions(registry, [parse_ref(trained_home.parent.ref)], latency_runs=10)
    html = render_html(report)
    assert html.startswith("<!DOCTYPE html>")
    assert html.count("<img") == 4


def test_data_file_rows_are_matched_to_the_version_labels_by_name(
    registry: Registry, trained_home: TrainedHome, tmp_path: Path
) -> None:
    parent = trained_home.parent
    source = load_source(registry, parent.name, parent.version)
    keep = np.isin(source.splits.test_y, [3, 5, 7])  # a file with 3 of the 10 classes
    x, y = source.test_x[keep], source.splits.test_y[keep]
    path = tmp_path / "rows.npz"
    np.savez(path, x=x, y=y)
    report = evaluate_versions(registry, [parse_ref(parent.ref)], path, latency_runs=10)
    [result] = report.versions
    probs = open_session(source.onnx_bytes).run(["probabilities"], {"input": x})[0]
    assert result.quality.rows == len(y)
    assert result.quality.accuracy == pytest.approx(float(np.mean(probs.argmax(1) == y)))
    assert [c.support for c in result.quality.per_class if c.support] == [
        int((y == k).sum()) for k in (3, 5, 7)
    ]
    assert result.data_origin == f"all rows of {path}"


def test_spec_file_gives_its_test_split(
    registry: Registry, trained_home: TrainedHome, tmp_path: Path
) -> None:
    import yaml
    from trained_models import MLP_SPEC

    from maas.train.data import load_dataset, split_dataset
    from maas.train.spec import parse_spec

    spec = dict(MLP_SPEC, seed=11)
    path = tmp_path / "other.yaml"
    path.write_text(yaml.safe_dump(spec))
    report = evaluate_versions(
        registry, [parse_ref(trained_home.parent.ref)], path, latency_runs=10
    )
    [result] = report.versions
    assert result.data_origin == "test split of digits (seed 11)"
    parsed = parse_spec(spec)
    splits = split_dataset(load_dataset(parsed.data), parsed.data.split, parsed.seed)
    assert result.quality.rows == len(splits.test_y)
    assert int(result.quality.confusion.sum(axis=1)[4]) == int((splits.test_y == 4).sum())
