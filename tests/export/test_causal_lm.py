"""Export of a GPT with its key/value cache, and the checks that must pass before registering."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from maas.errors import ValidationFailed
from maas.export.causal_lm import export_causal_lm, input_names, output_names
from maas.export.causal_lm_checks import (
    cache_shape,
    check_cached_parity,
    check_greedy,
    torch_greedy,
    validate_causal_lm,
)
from maas.export.validate import open_session
from maas.generate.greedy import greedy_generate
from maas.train.gpt import GPT
from maas.train.spec import GptOptions

VOCAB = 320
OPTIONS = GptOptions(layers=2, heads=2, dim=32, context=32, vocab_size=VOCAB)


def make_gpt(seed: int = 0) -> GPT:
    """A GPT with weights drawn wider than at initialisation, so logits are far apart."""
    torch.manual_seed(seed)
    model = GPT(VOCAB, OPTIONS)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Linear | nn.Embedding):
                module.weight.normal_(0.0, 0.3)
    return model.eval()


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """One intra-op thread, as training and validation use: tiny tensors gain nothing from more."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model() -> GPT:
    return make_gpt()


@pytest.fixture(scope="module")
def onnx_bytes(model: GPT) -> bytes:
    data, info = export_causal_lm(model)
    assert info.opset == 18
    assert info.exporter == "torch.onnx.export(dynamo=False)"
    return data


def windows(count: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    stream = np.random.default_rng(seed).integers(0, VOCAB, size=count * 32 + 1)
    return stream[:-1].reshape(count, 32), stream[1:].reshape(count, 32)


@pytest.mark.slow
def test_graph_has_the_contract_interface_with_symbolic_lengths(onnx_bytes: bytes) -> None:
    graph = onnx.load_from_string(onnx_bytes).graph
    assert [i.name for i in graph.input] == input_names(2)
    assert [o.name for o in graph.output] == output_names(2)
    assert input_names(2)[3:5] == ["past_key_values.0.key", "past_key_values.0.value"]
    assert output_names(2)[1:3] == ["present.0.key", "present.0.value"]

    def dims(value: onnx.ValueInfoProto) -> list[str | int]:
        return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]

    by_name = {v.name: v for v in [*graph.input, *graph.output]}
    assert dims(by_name["input_ids"]) == ["batch_size", "sequence_length"]
    assert dims(by_name["attention_mask"])[1] == "past_sequence_length + sequence_length"
    assert dims(by_name["past_key_values.1.value"]) == ["batch_size", 2, "past_sequence_length", 16]
    assert dims(by_name["logits"]) == ["batch_size", "sequence_length", VOCAB]
    types = {v.name: v.type.tensor_type.elem_type for v in graph.input}
    assert types["input_ids"] == types["attention_mask"] == onnx.TensorProto.INT64
    assert types["past_key_values.0.key"] == onnx.TensorProto.FLOAT


@pytest.mark.slow
def test_exported_model_passes_every_check(model: GPT, onnx_bytes: bytes) -> None:
    report = validate_causal_lm(
        onnx_bytes, model, windows(5), windows(3, seed=2), eos_token_id=None
    )
    assert report.parity_max_abs_diff <= 1e-4
    assert report.greedy_tokens_compared == 36  # three prompts, 12 new tokens each
    assert 1.0 < report.validation_perplexity < 1e6
    assert report.test_perplexity is not None
    metrics = report.to_metrics()
    assert metrics["validation_perplexity"] == report.validation_perplexity


@pytest.mark.slow
def test_parity_fails_against_another_model(onnx_bytes: bytes) -> None:
    session = open_session(onnx_bytes)
    other = make_gpt()
    with torch.no_grad():
        other.blocks[0].attention.qkv.bias.add_(1e-3)  # a small change, reaching the cache too
    with pytest.raises(ValidationFailed, match=r"parity check failed: .* at the prefill"):
        check_cached_parity(other, session, windows(2)[0][:, :14], atol=1e-4)


@pytest.mark.slow
def test_greedy_check_compares_tokens(model: GPT, onnx_bytes: bytes) -> None:
    session = open_session(onnx_bytes)
    prompts = [[5, 6, 7], [100]]
    assert check_greedy(model, session, prompts, eos_token_id=None) == 24
    with pytest.raises(ValidationFailed, match="greedy generation check failed"):
        check_greedy(make_gpt(seed=9), session, prompts, eos_token_id=None)


@pytest.mark.slow
def test_perplexity_gate(model: GPT, onnx_bytes: bytes) -> None:
    with pytest.raises(ValidationFailed, match="perplexity check failed: validation perplexity"):
        validate_causal_lm(
            onnx_bytes, model, windows(2), windows(0), eos_token_id=0, max_validation_perplexity=1.0
        )


@pytest.mark.slow
def test_onnx_greedy_loop_stops_at_eos_and_at_the_context(model: GPT, onnx_bytes: bytes) -> None:
    session = open_session(onnx_bytes)
    cache = cache_shape(model)
    prompt = [11, 12, 13, 14]
    free = torch_greedy(model, prompt, 10, eos_token_id=None)
    eos = free[2]
    stopped = greedy_generate(
        session, prompt, cache=cache, max_new_tokens=10, eos_token_id=eos, context=32
    )
    assert stopped == free[: free.index(eos) + 1]
    long_prompt = list(range(30))
    near_end = greedy_generate(
        session, long_prompt, cache=cache, max_new_tokens=10, eos_token_id=None, context=32
    )
    assert near_end == torch_greedy(model, long_prompt, 10, eos_token_id=None)
    assert len(near_end) == 2
    with pytest.raises(ValueError, match="a prompt needs 1 to 31 tokens"):
        greedy_generate(session, [], cache=cache, max_new_tokens=1, eos_token_id=None, context=32)


def test_greedy_loop_imports_without_torch() -> None:
    code = "import sys, maas.generate.greedy; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
