"""The train -> export -> validate -> register pipeline for language models (`model.kind: gpt`).

The same stages as for classifiers (`maas.pipeline`), over text: the corpus is split by documents,
a byte-level BPE tokenizer is learnt from the training documents only, token windows go through
the shared training loop (checkpoints, exact resume), the model is exported with its key/value
cache, validated (parity, greedy generation, perplexity) and registered with two extra files:

    tokenizer.json           the tokenizer (`tokenizers` JSON, read without torch)
    generation_config.json   {"kind": "causal_lm", "context", "eos_token_id", "bos_token_id",
                              "vocab_size", "layers", "heads", "head_dim"}

The generation config is also kept in the version's lineage (`generation`), so `maas models show`
displays it.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer

from maas.config import Settings
from maas.export.causal_lm import export_causal_lm
from maas.export.causal_lm_checks import CausalLMReport, validate_causal_lm
from maas.pipeline import (
    TrainResult,
    export_files,
    register_run,
    run_dir_for,
    run_lineage,
    write_export,
)
from maas.signature import read_onnx_signature
from maas.train.data import Splits
from maas.train.gpt import GPT
from maas.train.loop import TrainObserver, TrainOutcome, train_model
from maas.train.models import count_parameters
from maas.train.spec import Spec
from maas.train.text import TextCorpus, load_text, split_text
from maas.train.tokenizer import end_of_text_id, token_splits, train_tokenizer

log = logging.getLogger(__name__)

TOKENIZER_FILE = "tokenizer.json"
GENERATION_CONFIG_FILE = "generation_config.json"


@dataclass(frozen=True)
class PreparedText:
    """A corpus, the tokenizer learnt from its training documents, and its token windows."""

    corpus: TextCorpus
    tokenizer: Tokenizer
    splits: Splits
    documents: dict[str, int]


def prepare_text(spec: Spec, base_dir: Path | None) -> PreparedText:
    """Load and split the corpus, learn the tokenizer on the training split, cut the windows."""
    options = spec.model.gpt()
    corpus = load_text(spec.data, base_dir)
    text = split_text(corpus, spec.data.split, spec.seed)
    tokenizer = train_tokenizer(text.train, options.vocab_size)
    splits = token_splits(tokenizer, text, options.context)
    counts = {"train": len(text.train), "validation": len(text.validation), "test": len(text.test)}
    return PreparedText(corpus, tokenizer, splits, counts)


def build_gpt(spec: Spec, vocab_size: int) -> GPT:
    """The spec's GPT, with initial weights drawn from `torch.manual_seed(spec.seed)`."""
    torch.manual_seed(spec.seed)
    return GPT(vocab_size, spec.model.gpt())


def generation_config(model: GPT, tokenizer: Tokenizer) -> dict[str, Any]:
    """The generation config stored with the version (the generative-version contract)."""
    options = model.options
    return {
        "kind": "causal_lm",
        "context": options.context,
        "eos_token_id": end_of_text_id(tokenizer),
        "bos_token_id": None,
        "vocab_size": model.vocab_size,
        "layers": options.layers,
        "heads": options.heads,
        "head_dim": options.dim // options.heads,
    }


def _lineage(
    spec: Spec,
    prep: PreparedText,
    outcome: TrainOutcome,
    export: dict[str, Any],
    gen: dict[str, Any],
) -> dict[str, Any]:
    dataset = {
        "source": spec.data.source,
        "fingerprint": prep.corpus.fingerprint,
        "documents": prep.documents,
        "characters": prep.corpus.characters,
        "train_tokens": int(prep.splits.train_x.size),
    }
    tokenizer = {
        "kind": "byte-level BPE",
        "vocab_size": prep.tokenizer.get_vocab_size(),
        "trained_on": "train split",
        "file": TOKENIZER_FILE,
    }
    return run_lineage(spec, outcome, export, dataset=dataset, tokenizer=tokenizer, generation=gen)


def _export_files(
    spec: Spec,
    prep: PreparedText,
    model: GPT,
    onnx_bytes: bytes,
    outcome: TrainOutcome,
    metrics: dict[str, float],
    lineage: dict[str, Any],
) -> dict[str, bytes]:
    """The export folder's files: the shared ones and the two kept with a language model."""
    manifest = {
        "name": spec.name,
        "signature": read_onnx_signature(onnx_bytes).to_dict(),
        "labels": [],
        "metrics": metrics,
        "lineage": lineage,
        "files": [
            TOKENIZER_FILE,
            GENERATION_CONFIG_FILE,
            "weights.safetensors",
            "spec.yaml",
            "history.json",
        ],
    }
    return {
        TOKENIZER_FILE: prep.tokenizer.to_str().encode(),
        GENERATION_CONFIG_FILE: json.dumps(lineage["generation"], indent=1).encode(),
        **export_files(spec, onnx_bytes, model, manifest, outcome.history),
    }


def _metrics(
    report: CausalLMReport, outcome: TrainOutcome, model: GPT, size: int
) -> dict[str, float]:
    last = outcome.history[-1] if outcome.history else {}
    validation_loss = float(last.get("validation_loss", math.nan))
    return report.to_metrics() | {
        "validation_loss": validation_loss,
        "torch_validation_perplexity": math.exp(validation_loss),
        "validation_accuracy": float(last.get("validation_accuracy", 0.0)),
        "train_seconds": outcome.seconds,
        "parameters": float(count_parameters(model)),
        "size_bytes": float(size),
    }


def train_causal_lm(
    spec: Spec,
    settings: Settings,
    *,
    base_dir: Path | None = None,
    resume: bool = False,
    register: bool = True,
    observer: TrainObserver | None = None,
    actor: str | None = None,
    source: str = "api",
) -> TrainResult:
    """Train a `kind: gpt` spec, export and validate it, and (unless told not to) register it.

    The arguments and result are those of `maas.pipeline.train`, which calls this for gpt specs.
    """
    started = time.perf_counter()
    prep = prepare_text(spec, base_dir)
    model = build_gpt(spec, prep.tokenizer.get_vocab_size())
    run_dir = run_dir_for(settings, spec)
    outcome = train_model(
        model,
        prep.splits,
        spec.train,
        seed=spec.seed,
        checkpoint_dir=run_dir / "checkpoints",
        spec_hash=spec.fingerprint(),
        resume=resume,
        observer=observer,
    )
    onnx_bytes, export_info = export_causal_lm(model, spec.export.opset)
    gen = generation_config(model, prep.tokenizer)
    report = validate_causal_lm(
        onnx_bytes,
        model,
        (prep.splits.validation_x, prep.splits.validation_y),
        (prep.splits.test_x, prep.splits.test_y),
        eos_token_id=gen["eos_token_id"],
        parity_atol=spec.validate_.parity_atol,
        max_validation_perplexity=spec.validate_.max_validation_perplexity,
    )
    metrics = _metrics(report, outcome, model, len(onnx_bytes))
    metrics["total_seconds"] = time.perf_counter() - started
    lineage = _lineage(spec, prep, outcome, export_info.to_dict(), gen)
    export_dir = run_dir / "export"
    write_export(
        export_dir, _export_files(spec, prep, model, onnx_bytes, outcome, metrics, lineage)
    )
    version = register_run(settings, export_dir, source=source, actor=actor) if register else None
    log.info(
        "train.finished",
        extra={"name": spec.name, "validation_perplexity": report.validation_perplexity},
    )
    return TrainResult(spec, run_dir, export_dir, metrics, outcome.history, version)
