"""End to end for language models: train on a text folder, export, validate, register; then use
the registered version from outside, the way a serving engine would (no torch)."""

from __future__ import annotations

import json
from pathlib import Path

import onnxruntime as ort
import pytest
from cli.cli_helpers import run_cli
from text_corpus import tiny_gpt_spec, write_corpus
from tokenizers import Tokenizer

from maas.causal_lm_pipeline import prepare_text
from maas.config import load_settings
from maas.errors import ValidationFailed
from maas.generate.greedy import CacheShape, greedy_generate
from maas.generate.loader import load_generator
from maas.generate.sampling import SamplingParams
from maas.pipeline import TrainResult, train
from maas.registry.store import Registry
from maas.train.spec import parse_spec

CONTRACT_KEYS = {
    "kind",
    "context",
    "eos_token_id",
    "bos_token_id",
    "vocab_size",
    "layers",
    "heads",
    "head_dim",
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def trained(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    home = tmp_path_factory.mktemp("home")
    return train(parse_spec(tiny_gpt_spec(corpus)), load_settings(home=home))


@pytest.mark.slow
def test_registered_version_carries_tokenizer_and_generation_config(
    trained: TrainResult, corpus: Path
) -> None:
    version = trained.version
    assert version is not None
    assert version.ref == "tiny-lm@1"
    assert version.labels == ()
    assert [t.name for t in version.signature.inputs][:3] == [
        "input_ids",
        "attention_mask",
        "position_ids",
    ]
    assert version.metrics["parity_max_abs_diff"] <= 1e-4
    assert version.metrics["greedy_tokens_compared"] > 0
    assert version.metrics["validation_perplexity"] == pytest.approx(
        version.metrics["torch_validation_perplexity"], rel=1e-4
    )
    assert version.lineage["dataset"]["fingerprint"].startswith("sha256:")
    assert version.lineage["export"]["exporter"] == "torch.onnx.export(dynamo=False)"
    home = trained.run_dir.parents[1]
    with Registry.from_settings(load_settings(home=home)) as registry:
        config = json.loads(registry.read_file(version, "generation_config.json"))
        tokenizer_json = registry.read_file(version, "tokenizer.json").decode()
    assert set(config) == CONTRACT_KEYS
    assert config == version.lineage["generation"]
    assert (config["kind"], config["context"], config["layers"]) == ("causal_lm", 32, 1)
    assert (config["heads"], config["head_dim"], config["bos_token_id"]) == (2, 16, None)
    tokenizer = Tokenizer.from_str(tokenizer_json)
    assert tokenizer.id_to_token(config["eos_token_id"]) == "<|endoftext|>"
    assert config["vocab_size"] == tokenizer.get_vocab_size() <= 384
    # The stored tokenizer is the one learnt from the training split of the same spec.
    again = prepare_text(trained.spec, None).tokenizer
    assert again.to_str() == tokenizer_json


@pytest.mark.slow
def test_registered_onnx_generates_text_without_torch(trained: TrainResult) -> None:
    home = trained.run_dir.parents[1]
    with Registry.from_settings(load_settings(home=home)) as registry:
        version = registry.get("tiny-lm", "latest")
        model = registry.read_artifact(version)
        tokenizer = Tokenizer.from_str(registry.read_file(version, "tokenizer.json").decode())
    config = version.lineage["generation"]
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    prompt = tokenizer.encode("The assert statement").ids
    new = greedy_generate(
        session,
        prompt,
        cache=CacheShape.from_config(config),
        max_new_tokens=8,
        eos_token_id=config["eos_token_id"],
        context=config["context"],
    )
    assert 1 <= len(new) <= 8
    assert all(0 <= token < config["vocab_size"] for token in new)
    assert isinstance(tokenizer.decode(prompt + new), str)


@pytest.mark.slow
def test_models_show_displays_the_generation_config(
    trained: TrainResult, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAAS_HOME", str(trained.run_dir.parents[1]))
    result = run_cli(capsys, "models", "show", "tiny-lm@latest", "--json")
    assert result.code == 0
    doc = result.json()
    assert doc["lineage"]["generation"]["kind"] == "causal_lm"
    assert {"tokenizer.json", "generation_config.json"} <= set(doc["files"])


@pytest.mark.slow
def test_perplexity_gate_refuses_registration(corpus: Path, tmp_path: Path) -> None:
    doc = tiny_gpt_spec(corpus, epochs=1)
    doc["validate"] = {"max_validation_perplexity": 2.0}
    settings = load_settings(home=tmp_path)
    with pytest.raises(ValidationFailed, match="perplexity check failed"):
        train(parse_spec(doc), settings)
    with Registry.from_settings(settings) as registry:
        assert registry.list_models() == []


@pytest.mark.slow
async def test_the_generation_engine_serves_the_registered_version(trained: TrainResult) -> None:
    """The serving engine loads what training registered; at temperature 0 it writes, for two
    sequences batched together, the text of the validated greedy loop."""
    home = trained.run_dir.parents[1]
    with Registry.from_settings(load_settings(home=home)) as registry:
        version = registry.get("tiny-lm", "latest")
        model = registry.read_artifact(version)
        tokenizer_json = registry.read_file(version, "tokenizer.json").decode()
    config = version.lineage["generation"]
    generator = load_generator(model, tokenizer_json, config, name="tiny-lm:1")
    try:
        prompt = generator.encode_prompt("The assert statement")
        params = SamplingParams(max_tokens=10, temperature=0.0)
        streams = [generator.start(prompt, params, deadline_s=None) for _ in range(2)]
        texts = [(await stream.text())[0] for stream in streams]
    finally:
        generator.stop()
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    expected = greedy_generate(
        session,
        prompt,
        cache=CacheShape.from_config(config),
        max_new_tokens=10,
        eos_token_id=config["eos_token_id"],
        context=config["context"],
    )
    expected_text = Tokenizer.from_str(tokenizer_json).decode(expected)
    assert texts == [expected_text, expected_text]
