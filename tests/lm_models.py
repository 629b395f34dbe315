"""A tiny GPT-style causal LM with a KV cache, built with `onnx.helper`, and a byte-level BPE
tokenizer trained on a few lines, for tests of the generation engine and its endpoints.

The graph follows the generative-model contract (inputs `input_ids`, `attention_mask`,
`position_ids`, `past_key_values.{i}.key/value`; outputs `logits`, `present.{i}.key/value`),
with random weights from a seed. The end-of-text logit gets a large negative bias so sequences
run to `max_tokens` unless a test asks for the opposite.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from maas.generate.model import CausalLm, LmConfig, StepInputs, StepOutputs
from maas.signature import Signature, TensorSpec

OPSET = 18
EOS = "<|endoftext|>"
TEXT = [
    "the quick brown fox jumps over the lazy dog",
    "a model as a service answers every request with care",
    "tokens stream one by one until the story ends",
    "hello world, hello model, hello everyone",
    "continuous batching keeps the accelerator busy",
]


@dataclass(frozen=True)
class TinyLm:
    """One tiny causal LM: its ONNX bytes, tokenizer JSON and generation config."""

    model_bytes: bytes
    tokenizer_json: str
    config: dict[str, Any]

    @property
    def signature(self) -> Signature:
        layers, heads, dim = self.config["layers"], self.config["heads"], self.config["head_dim"]
        past = [
            TensorSpec(f"past_key_values.{i}.{kind}", "FP32", (-1, heads, -1, dim))
            for i in range(layers)
            for kind in ("key", "value")
        ]
        present = [
            TensorSpec(f"present.{i}.{kind}", "FP32", (-1, heads, -1, dim))
            for i in range(layers)
            for kind in ("key", "value")
        ]
        return Signature(
            inputs=(
                TensorSpec("input_ids", "INT64", (-1, -1)),
                TensorSpec("attention_mask", "INT64", (-1, -1)),
                TensorSpec("position_ids", "INT64", (-1, -1)),
                *past,
            ),
            outputs=(TensorSpec("logits", "FP32", (-1, -1, self.config["vocab_size"])), *present),
        )


def train_tokenizer(vocab_size: int = 320) -> Tokenizer:
    """A byte-level BPE tokenizer (any text encodes) trained on `TEXT`."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(TEXT, trainer)
    return tokenizer


def build_tiny_lm(
    *, layers: int = 2, heads: int = 2, head_dim: int = 8, context: int = 128, seed: int = 0
) -> TinyLm:
    """The tiny LM and its tokenizer; the same arguments give the same bytes."""
    tokenizer = train_tokenizer()
    vocab = tokenizer.get_vocab_size()
    eos = tokenizer.token_to_id(EOS)
    rng = np.random.default_rng(seed)
    graph = _LmGraph(rng, vocab, layers, heads, head_dim, context)
    model = graph.build(eos)
    config = {
        "kind": "causal_lm",
        "context": context,
        "eos_token_id": eos,
        "bos_token_id": None,
        "vocab_size": vocab,
        "layers": layers,
        "heads": heads,
        "head_dim": head_dim,
    }
    return TinyLm(model.SerializeToString(), tokenizer.to_str(), config)


class _LmGraph:
    """Builds the decoder graph node by node (pre-norm attention blocks, tied nothing)."""

    def __init__(
        self,
        rng: np.random.Generator,
        vocab: int,
        layers: int,
        heads: int,
        head_dim: int,
        context: int,
    ) -> None:
        self.rng = rng
        self.vocab, self.layers, self.heads, self.head_dim = vocab, layers, heads, head_dim
        self.width = heads * head_dim
        self.context = context
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []

    def weight(self, name: str, shape: tuple[int, ...], scale: float) -> str:
        array = (self.rng.normal(size=shape) * scale).astype(np.float32)
        self.inits.append(numpy_helper.from_array(array, name))
        return name

    def const(self, name: str, array: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(array, name))
        return name

    def node(self, op: str, inputs: list[str], output: str, **attrs: Any) -> str:
        self.nodes.append(helper.make_node(op, inputs, [output], **attrs))
        return output

    def build(self, eos: int) -> onnx.ModelProto:
        self._constants()
        x = self._embed()
        bias = self._mask_bias()
        for i in range(self.layers):
            x = self._block(i, x, bias)
        h = self._norm("final", x)
        lm_bias = np.zeros(self.vocab, dtype=np.float32)
        lm_bias[eos] = -100.0
        head = self.weight("lm_head", (self.width, self.vocab), 2.0 / np.sqrt(self.width))
        out = self.node("MatMul", [h, head], "logits0")
        self.node("Add", [out, self.const("lm_bias", lm_bias)], "logits")
        return self._model()

    def _constants(self) -> None:
        self.const("zero_i", np.array(0, dtype=np.int64))
        self.const("one_i", np.array(1, dtype=np.int64))
        self.const("neg", np.array(-1e9, dtype=np.float32))
        self.const("fzero", np.array(0.0, dtype=np.float32))
        self.const("scale", np.array(1.0 / np.sqrt(self.head_dim), dtype=np.float32))
        self.const("split_shape", np.array([0, 0, self.heads, self.head_dim], dtype=np.int64))
        self.const("merge_shape", np.array([0, 0, self.width], dtype=np.int64))
        self.const("axes_01", np.array([0, 1], dtype=np.int64))
        self.const("axes_1", np.array([1], dtype=np.int64))
        self.const("axes_12", np.array([1, 2], dtype=np.int64))

    def _embed(self) -> str:
        wte = self.weight("wte", (self.vocab, self.width), 1.0)
        wpe = self.weight("wpe", (self.context, self.width), 0.5)
        tokens = self.node("Gather", [wte, "input_ids"], "tok_emb")
        positions = self.node("Gather", [wpe, "position_ids"], "pos_emb")
        return self.node("Add", [tokens, positions], "x_in")

    def _mask_bias(self) -> str:
        """[B, 1, S, T]: 0 where query s may see key t (causal and not padding), else -1e9."""
        s = self.node("Gather", [self.node("Shape", ["input_ids"], "ids_shape"), "one_i"], "S")
        t = self.node("Gather", [self.node("Shape", ["attention_mask"], "m_shape"), "one_i"], "T")
        p = self.node("Sub", [t, s], "P")
        keys = self.node("Range", ["zero_i", t, "one_i"], "key_idx")
        queries = self.node("Range", [p, t, "one_i"], "query_idx")
        q_col = self.node("Unsqueeze", [queries, "axes_1"], "query_col")
        causal = self.node("LessOrEqual", [keys, q_col], "causal")  # [S, T]
        causal4 = self.node("Unsqueeze", [causal, "axes_01"], "causal4")  # [1, 1, S, T]
        pad = self.node("Cast", ["attention_mask"], "mask_bool", to=TensorProto.BOOL)
        pad4 = self.node("Unsqueeze", [pad, "axes_12"], "mask4")  # [B, 1, 1, T]
        allowed = self.node("And", [causal4, pad4], "allowed")
        return self.node("Where", [allowed, "fzero", "neg"], "mask_bias")

    def _norm(self, name: str, x: str) -> str:
        gain = self.const(f"{name}_g", np.ones(self.width, dtype=np.float32))
        shift = self.const(f"{name}_b", np.zeros(self.width, dtype=np.float32))
        return self.node("LayerNormalization", [x, gain, shift], f"{name}_ln", axis=-1)

    def _heads(self, name: str, h: str, i: int) -> str:
        w = self.weight(f"w{name}{i}", (self.width, self.width), 1.0 / np.sqrt(self.width))
        flat = self.node("MatMul", [h, w], f"{name}{i}_flat")
        split = self.node("Reshape", [flat, "split_shape"], f"{name}{i}_split")
        return self.node("Transpose", [split], f"{name}{i}_heads", perm=[0, 2, 1, 3])

    def _block(self, i: int, x: str, bias: str) -> str:
        h = self._norm(f"attn{i}", x)
        q = self._heads("q", h, i)
        k_new = self._heads("k", h, i)
        v_new = self._heads("v", h, i)
        k = self.node("Concat", [f"past_key_values.{i}.key", k_new], f"present.{i}.key", axis=2)
        v = self.node("Concat", [f"past_key_values.{i}.value", v_new], f"present.{i}.value", axis=2)
        k_t = self.node("Transpose", [k], f"k{i}_t", perm=[0, 1, 3, 2])
        scores = self.node("Mul", [self.node("MatMul", [q, k_t], f"qk{i}"), "scale"], f"sc{i}")
        masked = self.node("Add", [scores, bias], f"masked{i}")
        probs = self.node("Softmax", [masked], f"probs{i}", axis=-1)
        mixed = self.node("MatMul", [probs, v], f"mixed{i}")
        merged = self.node("Transpose", [mixed], f"mixed{i}_t", perm=[0, 2, 1, 3])
        flat = self.node("Reshape", [merged, "merge_shape"], f"attn{i}_flat")
        wo = self.weight(f"wo{i}", (self.width, self.width), 1.0 / np.sqrt(self.width))
        x = self.node("Add", [x, self.node("MatMul", [flat, wo], f"attn{i}_out")], f"x_attn{i}")
        h2 = self._norm(f"mlp{i}", x)
        w1 = self.weight(f"w1_{i}", (self.width, 2 * self.width), 1.0 / np.sqrt(self.width))
        w2 = self.weight(f"w2_{i}", (2 * self.width, self.width), 1.0 / np.sqrt(2 * self.width))
        hidden = self.node("Relu", [self.node("MatMul", [h2, w1], f"mlp{i}_up")], f"mlp{i}_act")
        out = self.node("MatMul", [hidden, w2], f"mlp{i}_down")
        return self.node("Add", [x, out], f"x_out{i}")

    def _model(self) -> onnx.ModelProto:
        kv = ["batch", self.heads, "past", self.head_dim]
        kv_out = ["batch", self.heads, "total", self.head_dim]
        inputs = [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "total"]),
            helper.make_tensor_value_info("position_ids", TensorProto.INT64, ["batch", "seq"]),
        ]
        outputs = [
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", "seq", self.vocab])
        ]
        for i in range(self.layers):
            for kind in ("key", "value"):
                name = f"past_key_values.{i}.{kind}"
                inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, kv))
                outputs.append(
                    helper.make_tensor_value_info(f"present.{i}.{kind}", TensorProto.FLOAT, kv_out)
                )
        graph = helper.make_graph(self.nodes, "tiny_lm", inputs, outputs, self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
        model.ir_version = 10
        onnx.checker.check_model(model, full_check=True)
        return model


class HeldModel:
    """Wraps a real model; each step waits for `gate` (stands in for a slow model)."""

    def __init__(self, model: CausalLm) -> None:
        self.model = model
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.permits: threading.Semaphore | None = None  # when set: one permit per step
        self.batches: list[int] = []
        self.shapes: list[tuple[int, int]] = []

    def allow_steps(self, count: int) -> None:
        """From now on run the model only as often as allowed: `count` more runs (a prefill and
        a decode step are one run each)."""
        if self.permits is None:
            self.permits = threading.Semaphore(0)
        self.permits.release(count)

    @property
    def config(self) -> LmConfig:
        return self.model.config

    def step(self, inputs: StepInputs) -> StepOutputs:
        self.entered.set()
        self.gate.wait(30)
        if self.permits is not None:
            self.permits.acquire(timeout=30)
        self.batches.append(inputs.input_ids.shape[0])
        self.shapes.append(inputs.input_ids.shape)
        return self.model.step(inputs)


def greedy_by_recompute(model: CausalLm, prompt: list[int], count: int) -> list[int]:
    """Greedy tokens computed without a cache: the whole prefix, batch of one, every step."""
    ids = list(prompt)
    cfg = model.config
    empty = tuple(
        np.zeros((1, cfg.heads, 0, cfg.head_dim), np.float32) for _ in range(2 * cfg.layers)
    )
    for _ in range(count):
        n = len(ids)
        inputs = StepInputs(
            np.array([ids], np.int64), np.ones((1, n), np.int64), np.arange(n)[None], empty
        )
        ids.append(int(np.argmax(model.step(inputs).last_logits[0])))
    return ids[len(prompt) :]
