"""Generative versions in the serving repository: recognising, loading and finding them.

A registered version is generative when its lineage carries a generation config with
`"kind": "causal_lm"`: under the lineage key `generation`, or as the lineage itself. Its
tokenizer is the version's extra file `tokenizer.json`, else the config's `tokenizer` string
(the `tokenizers` JSON). Such a version gets a `TextGenerator` (its scheduler) instead of a
working batcher: the v2 `/infer` on it answers 400 and points at the generation endpoints.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from maas.batching.batcher import Batcher
from maas.batching.policy import BatchPolicy
from maas.errors import InvalidInput, MaasError
from maas.generate.loader import load_generator
from maas.generate.model import CAUSAL_LM_KIND
from maas.generate.scheduler import GenerationLimits
from maas.generate.text import TextGenerator
from maas.metrics.prometheus import ServingMetrics
from maas.serving.repository import LoadedVersion, ModelRepository, ModelSource

if TYPE_CHECKING:
    from maas.registry.versions import ModelVersion

log = logging.getLogger(__name__)

GENERATION_KEY = "generation"  # lineage key of the generation config
TOKENIZER_FILE = "tokenizer.json"  # the version's extra file holding the tokenizer
TOKENIZER_KEY = "tokenizer"  # or: the tokenizer JSON inside the generation config


def generation_config_of(lineage: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The generation config in a version's lineage (None: not a generative version)."""
    nested = lineage.get(GENERATION_KEY)
    if isinstance(nested, Mapping) and nested.get("kind") == CAUSAL_LM_KIND:
        return nested
    if lineage.get("kind") == CAUSAL_LM_KIND:
        return lineage
    return None


def read_tokenizer(source: ModelSource, mv: ModelVersion, config: Mapping[str, Any]) -> str:
    """The version's tokenizer JSON.

    Raises:
        InvalidInput: the version has neither a `tokenizer.json` file nor a tokenizer string.
    """
    if TOKENIZER_FILE in mv.files:
        return source.read_file(mv, TOKENIZER_FILE).decode("utf-8")
    inline = config.get(TOKENIZER_KEY)
    if isinstance(inline, str):
        return inline
    raise InvalidInput(
        f"generative version {mv.ref} has no tokenizer: register it with a "
        f"{TOKENIZER_FILE!r} file or a {TOKENIZER_KEY!r} string in its generation config"
    )


class GenerativeOnly:
    """The runner behind a generative version's batcher: tensors in are refused (400)."""

    def __init__(self, label: str) -> None:
        self._label = label

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        raise InvalidInput(
            f"model {self._label} generates text: use /v1/completions, /v1/chat/completions "
            "or the v2 /generate endpoints"
        )


def load_generative_version(
    source: ModelSource,
    mv: ModelVersion,
    policy: BatchPolicy,
    metrics: ServingMetrics,
    limits: GenerationLimits | None,
) -> LoadedVersion:
    """Load a generative version: its model, tokenizer and scheduler, with metrics."""
    config = generation_config_of(mv.lineage)
    if config is None:
        raise InvalidInput(f"version {mv.ref} is not generative")
    label = f"{mv.name}:{mv.version}"
    tokenizer_json = read_tokenizer(source, mv, config)
    gen_metrics = metrics.generation.for_version(mv.name, str(mv.version))
    generator = load_generator(
        source.read_artifact(mv),
        tokenizer_json,
        config,
        limits=limits,
        observer=gen_metrics,
        intra_op_threads=policy.intra_op_threads,
        name=label,
        on_stop=gen_metrics.forget,
    )
    scheduler = generator.scheduler
    gen_metrics.watch(
        lambda: float(scheduler.running),
        lambda: float(scheduler.waiting),
        lambda: float(scheduler.kv_cache_bytes),
    )
    one = BatchPolicy(max_batch_size=1, max_queue_delay_us=0, max_queue_size=1)
    version_metrics = metrics.for_version(mv.name, str(mv.version))
    batcher = Batcher([GenerativeOnly(label)], one, observer=version_metrics, name=label)
    batcher.start()
    log.info("version.loaded", extra={"model": mv.name, "version": mv.version, "generative": True})
    return LoadedVersion(mv, one, batcher, version_metrics, False, generator=generator)


def find_generator(
    repository: ModelRepository, name: str, version: str | None = None
) -> tuple[LoadedVersion, TextGenerator]:
    """The loaded generative version a request names (the model's route picks the version
    when none is named).

    Raises:
        ModelNotFound: no such model or version is served.
        InvalidInput: it is served but does not generate text.
    """
    loaded = repository.resolve(name, version)
    if loaded.generator is None:
        raise InvalidInput(f"model {loaded.label} does not generate text; use its /infer")
    return loaded, loaded.generator


def generative_versions(repository: ModelRepository) -> list[LoadedVersion]:
    """Every loaded generative version, by model name then version."""
    found = [loaded for loaded in repository if loaded.generator is not None]
    return sorted(found, key=lambda loaded: (loaded.name, loaded.model.version))


@contextlib.contextmanager
def answering(loaded: LoadedVersion, protocol: str) -> Iterator[None]:
    """Count one generation request while it runs: in flight (drains wait for it), then its
    outcome and duration in the version's request metrics."""
    start_ns = time.perf_counter_ns()
    code = "cancelled"
    loaded.in_flight.count += 1
    try:
        yield
        code = "ok"
    except MaasError as err:
        code = err.code.value
        raise
    finally:
        loaded.in_flight.count -= 1
        loaded.metrics.on_request(protocol, code, time.perf_counter_ns() - start_ns)
