"""`explain_version` and `maas explain`: occlusion, integrated gradients, heat maps for images."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread
from trained_models import CNN_SPEC, TrainedHome, train_into

from maas.cli import main
from maas.errors import InvalidInput, ShapeMismatch
from maas.evaluate.explain import baseline_of, explain_version, parse_input
from maas.evaluate.timing import open_session
from maas.optimize.source import load_source
from maas.registry import Registry

pytestmark = pytest.mark.slow


def test_occlusion_explains_the_predicted_class(
    registry: Registry, trained_home: TrainedHome
) -> None:
    parent = trained_home.parent
    source = load_source(registry, parent.name, parent.version)
    row = source.test_x[3]
    explanation = explain_version(registry, parent.name, parent.version, row)
    probs = open_session(source.onnx_bytes).run(["probabilities"], {"input": row[None]})[0][0]
    assert explanation.target == int(probs.argmax())
    np.testing.assert_allclose(explanation.probabilities, probs, rtol=1e-6)
    assert explanation.attributions.shape == (64,)
    assert explanation.image_shape == (1, 8, 8)
    top = explanation.top(5)
    assert len(top) == 5
    assert abs(top[0]["attribution"]) == pytest.approx(
        float(np.abs(explanation.attributions).max())
    )
    assert top[0]["feature"].startswith("pixel_")


def test_integrated_gradients_are_complete(registry: Registry, trained_home: TrainedHome) -> None:
    """IG attributions add up to f(x) - f(baseline) for the explained class."""
    parent = trained_home.parent
    source = load_source(registry, parent.name, parent.version)
    row = source.test_x[7]
    explanation = explain_version(
        registry, parent.name, parent.version, row, method="integrated-gradients"
    )
    session = open_session(source.onnx_bytes)
    baseline = baseline_of(parent, 64)
    p_row = session.run(["probabilities"], {"input": row[None]})[0][0][explanation.target]
    p_base = session.run(["probabilities"], {"input": baseline[None]})[0][0][explanation.target]
    assert float(explanation.attributions.sum()) == pytest.approx(p_row - p_base, abs=0.03)


def test_input_parsing(tmp_path: Path) -> None:
    np.testing.assert_array_equal(parse_input("[1, 2, 3]", 3), [1, 2, 3])
    np.testing.assert_array_equal(parse_input('{"data": [[1, 2]]}', 2), [1, 2])
    file = tmp_path / "row.json"
    file.write_text("[4, 5]")
    np.testing.assert_array_equal(parse_input(str(file), 2), [4, 5])
    with pytest.raises(ShapeMismatch, match="expects 4"):
        parse_input("[1, 2]", 4)
    with pytest.raises(InvalidInput):
        parse_input("not json", 2)


def test_cli_writes_a_heat_map_for_digit_images(
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    home = tmp_path_factory.mktemp("explain-cnn")
    settings, version = train_into(home, CNN_SPEC)
    monkeypatch.setenv("MAAS_HOME", str(home))
    with Registry.from_settings(settings) as registry:
        row = load_source(registry, version.name, version.version).test_x[0]
    out = home / "explain"
    capsys.readouterr()
    main(["explain", version.ref, "--input", json.dumps(row.tolist()), "--out", str(out), "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert doc["method"] == "occlusion"
    assert len(doc["attributions"]) == 64
    assert json.loads((out / "attributions.json").read_text()) == doc
    image = imread(out / "heatmap.png")
    assert image.shape[0] > 100
    assert float(image[..., :3].std()) > 0.01
