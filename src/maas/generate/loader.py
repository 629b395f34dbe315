"""`load_generator`: an ONNX causal LM, its tokenizer JSON and generation config in, a started
`TextGenerator` out. Torch-free: onnxruntime, numpy and `tokenizers` only."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from maas.generate.model import CausalLm, LmConfig, check_graph_names
from maas.generate.scheduler import GenerationLimits, GenerationObserver, Scheduler
from maas.generate.text import TextGenerator
from maas.generate.tokenizer import TextTokenizer
from maas.runtime.runner import ModelRunner

log = logging.getLogger(__name__)


def load_generator(
    model_bytes: bytes,
    tokenizer_json: str,
    config: Mapping[str, Any],
    *,
    limits: GenerationLimits | None = None,
    observer: GenerationObserver | None = None,
    intra_op_threads: int = 1,
    name: str = "",
    on_stop: Callable[[], None] | None = None,
) -> TextGenerator:
    """Load the model, check it against its config, and start its scheduler.

    Args:
        model_bytes: the ONNX graph (already verified by the registry).
        tokenizer_json: the `tokenizers` JSON.
        config: the generation config (`{"kind": "causal_lm", "context": ..., ...}`).
        limits: the scheduler's bounds (defaults when None).
        observer: told about steps and tokens (metrics).
        intra_op_threads: onnxruntime threads inside one operator.
        name: `model:version`, for logs and messages.
        on_stop: called when the generator stops.

    Raises:
        InvalidInput: the config, tokenizer or graph do not fit the contract.
        RunnerError: onnxruntime cannot load the graph.
    """
    lm_config = LmConfig.from_dict(config)
    tokenizer = TextTokenizer(tokenizer_json, lm_config)
    runner = ModelRunner(model_bytes, intra_op_threads=intra_op_threads, name=name)
    runner.load()
    inputs, outputs = runner.tensor_names()
    check_graph_names(set(inputs), set(outputs), lm_config)
    scheduler = Scheduler(
        CausalLm(runner, lm_config), limits or GenerationLimits(), observer=observer, name=name
    )
    scheduler.start()
    log.info("generator.loaded", extra={"model": name, "context": lm_config.context})
    return TextGenerator(tokenizer, scheduler, lm_config, on_stop=on_stop)
