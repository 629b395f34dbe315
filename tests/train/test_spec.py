"""The spec refuses unknown keys and wrong types before any work starts, naming the key's path."""

from pathlib import Path

import pytest

from maas.errors import SpecError
from maas.train.spec import load_spec, parse_spec

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize("name", ["digits-cnn.yaml", "digits-mlp.yaml"])
def test_examples_are_valid_specs(name: str) -> None:
    spec = load_spec(EXAMPLES / name)
    assert spec.name == name.removesuffix(".yaml")
    assert spec.data.source == "digits"


def test_defaults_fill_every_section() -> None:
    spec = parse_spec({"name": "iris", "data": {"source": "iris", "label": None}})
    doc = spec.to_dict()
    assert doc["train"]["optimizer"] == "adam"
    assert doc["validate"]["parity_atol"] == pytest.approx(1e-4)
    assert doc["model"]["kind"] == "mlp"


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (
            {"name": "x", "data": {"source": "iris"}, "train": {"epohcs": 3}},
            "train.epohcs: unknown key",
        ),
        ({"name": "x", "data": {"source": "iris"}, "train": {"epochs": "ten"}}, "train.epochs:"),
        (
            {"name": "x", "data": {"source": "iris"}, "model": {"kind": "resnet"}},
            'unknown model kind "resnet"',
        ),
        (
            {"name": "x", "data": {"source": "iris", "split": {"tset": 0.1}}},
            "data.split.tset: unknown key",
        ),
        ({"name": "X Y", "data": {"source": "iris"}}, "name:"),
        ({"data": {"source": "iris"}}, "name: required key missing"),
        (
            {"name": "x", "data": {"source": "iris"}, "train": {"optimizer": "lion"}},
            "train.optimizer:",
        ),
        ({"name": "x", "data": {"source": "iris"}, "bogus": 1}, "bogus: unknown key"),
    ],
)
def test_bad_specs_name_the_key(data: dict[str, object], fragment: str) -> None:
    with pytest.raises(SpecError) as err:
        parse_spec(data, origin="spec")
    assert fragment in str(err.value)
    assert "\n" not in str(err.value)


def test_spec_file_errors(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(SpecError, match="cannot read"):
        load_spec(missing)
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(broken)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("just a string\n")
    with pytest.raises(SpecError, match="must be a mapping"):
        load_spec(scalar)


def test_fingerprint_changes_with_the_spec() -> None:
    a = parse_spec({"name": "x", "data": {"source": "iris"}})
    b = parse_spec({"name": "x", "data": {"source": "iris"}, "seed": 1})
    assert a.fingerprint() == parse_spec({"name": "x", "data": {"source": "iris"}}).fingerprint()
    assert a.fingerprint() != b.fingerprint()


GPT_OPTIONS = {"layers": 1, "heads": 2, "dim": 32, "context": 32}


def test_tiny_gpt_example_is_a_valid_gpt_spec() -> None:
    spec = load_spec(EXAMPLES / "tiny-gpt.yaml")
    options = spec.model.gpt()
    assert spec.model.kind == "gpt"
    assert spec.data.source == "pydoc_data"
    assert (options.layers, options.heads, options.dim, options.context) == (2, 4, 128, 64)
    assert spec.validate_.max_validation_perplexity is not None


@pytest.mark.parametrize(
    ("options", "source", "fragment"),
    [
        ({**GPT_OPTIONS, "heads": 3}, "pydoc_data", "dim 32 is not a multiple of heads 3"),
        ({"layers": 1, "heads": 2, "dim": 32}, "pydoc_data", "model.options: kind gpt: context"),
        ({**GPT_OPTIONS, "layer": 2}, "pydoc_data", "layer: unknown key"),
        ({**GPT_OPTIONS, "layers": 0}, "pydoc_data", "layers: Input should be greater"),
        ({**GPT_OPTIONS, "vocab_size": 100}, "pydoc_data", "vocab_size"),
        (GPT_OPTIONS, "digits", 'kind gpt trains on text, but data.source "digits" is a table'),
        (GPT_OPTIONS, "rows.csv", "is a table"),
    ],
)
def test_bad_gpt_specs_name_the_key(options: dict[str, object], source: str, fragment: str) -> None:
    doc = {"name": "lm", "data": {"source": source}, "model": {"kind": "gpt", "options": options}}
    with pytest.raises(SpecError, match="model") as info:
        parse_spec(doc)
    assert fragment in str(info.value)


def test_a_text_corpus_needs_kind_gpt() -> None:
    with pytest.raises(SpecError, match='"pydoc_data" is a text corpus: use kind gpt'):
        parse_spec({"name": "lm", "data": {"source": "pydoc_data"}, "model": {"kind": "mlp"}})


def test_gpt_options_are_validated_with_defaults() -> None:
    spec = parse_spec(
        {
            "name": "lm",
            "data": {"source": "corpus/"},
            "model": {"kind": "gpt", "options": GPT_OPTIONS},
        }
    )
    options = spec.model.gpt()
    assert (options.vocab_size, options.dropout) == (2048, 0.0)
