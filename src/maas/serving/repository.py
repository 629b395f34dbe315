"""`ModelRepository`: which versions are loaded, each with its runners, batcher and metrics.

Versions are loaded from the registry. Each model has a default version (the loaded one its
`production` alias points at, else the highest loaded) and every loaded version is reachable by
number. The routing table is an immutable snapshot replaced as a whole, so a later reload can
swap it atomically while requests read the old one.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from maas.batching.batcher import Batcher
from maas.batching.policy import BatchPolicy
from maas.errors import MaasError, ModelNotFound, NotFound
from maas.metrics.prometheus import ServingMetrics, VersionMetrics
from maas.runtime.runner import ModelRunner
from maas.serving.options import ServingConfig
from maas.signature import V2_TO_NUMPY, Signature

if TYPE_CHECKING:
    from maas.registry.versions import ModelVersion  # the registry package is heavy to import

log = logging.getLogger(__name__)

DEFAULT_ALIAS = "production"  # the alias that picks a model's default version


class ModelSource(Protocol):
    """The part of the registry the repository reads."""

    def get(self, name: str, ref: str = "latest") -> ModelVersion: ...

    def read_artifact(self, mv: ModelVersion) -> bytes: ...


class NamedModel(Protocol):
    """A registered model as `list_models()` returns it."""

    @property
    def name(self) -> str: ...


class ModelCatalog(ModelSource, Protocol):
    """A registry that can also list its models (to serve them all)."""

    def list_models(self) -> Sequence[NamedModel]: ...


@dataclass(frozen=True)
class LoadedVersion:
    """One model version ready to answer: its facts, policy, batcher and metrics."""

    model: ModelVersion
    policy: BatchPolicy
    batcher: Batcher
    metrics: VersionMetrics
    is_batchable: bool

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def version(self) -> str:
        return str(self.model.version)

    @functools.cached_property
    def label(self) -> str:
        """`name:version`, the way error messages name it."""
        return f"{self.model.name}:{self.model.version}"


@dataclass(frozen=True)
class _Table:
    versions: dict[str, dict[str, LoadedVersion]]
    defaults: dict[str, str]


class ModelRepository:
    """The loaded versions of every served model and their default versions."""

    def __init__(self, loaded: Sequence[LoadedVersion]) -> None:
        self._table = _build_table(loaded)

    def resolve(self, name: str, version: str | None = None) -> LoadedVersion:
        """The loaded version `version` of `name` (its default when None or empty).

        Raises:
            ModelNotFound: the model is not served, or that version is not loaded.
        """
        table = self._table
        versions = table.versions.get(name)
        if versions is None:
            raise ModelNotFound(f"model {name!r} is not served here")
        if not version:
            return versions[table.defaults[name]]
        loaded = versions.get(version)
        if loaded is None:
            served = ", ".join(sorted(versions, key=int))
            raise ModelNotFound(
                f"model {name!r} has no loaded version {version!r} (loaded: {served})"
            )
        return loaded

    def model_names(self) -> list[str]:
        """Served model names, sorted."""
        return sorted(self._table.versions)

    def version_names(self, name: str) -> tuple[str, ...]:
        """Loaded versions of `name`, ascending."""
        versions = self._table.versions.get(name)
        if versions is None:
            raise ModelNotFound(f"model {name!r} is not served here")
        return tuple(sorted(versions, key=int))

    def __iter__(self) -> Iterator[LoadedVersion]:
        for versions in self._table.versions.values():
            yield from versions.values()

    def __len__(self) -> int:
        return sum(len(v) for v in self._table.versions.values())

    def close(self) -> None:
        """Stop every batcher (each finishes what it has queued)."""
        for loaded in self:
            loaded.batcher.stop()


def _build_table(loaded: Sequence[LoadedVersion]) -> _Table:
    versions: dict[str, dict[str, LoadedVersion]] = {}
    for item in loaded:
        versions.setdefault(item.name, {})[item.version] = item
    defaults: dict[str, str] = {}
    for name, by_version in versions.items():
        aliased = [v for v, item in by_version.items() if DEFAULT_ALIAS in item.model.aliases]
        defaults[name] = aliased[0] if aliased else max(by_version, key=int)
    return _Table(versions, defaults)


def parse_model_ref(text: str) -> tuple[str, str | None]:
    """`NAME[@REF]` -> (name, ref or None)."""
    name, _, ref = text.partition("@")
    if not name:
        raise ModelNotFound(f"model reference {text!r} has no model name")
    return name, ref or None


def pick_default_version(source: ModelSource, name: str) -> ModelVersion:
    """A model's version to serve when none is named: its `production` alias, else the latest."""
    try:
        return source.get(name, DEFAULT_ALIAS)
    except NotFound:
        return source.get(name, "latest")


def select_versions(
    source: ModelCatalog, models: Sequence[str] | None, config: ServingConfig
) -> list[ModelVersion]:
    """The versions to load: the named refs, else the serve file's, else every registered model."""
    refs = list(models) if models else list(config.models)
    if not refs:
        refs = [model.name for model in source.list_models()]
    chosen: dict[tuple[str, int], ModelVersion] = {}
    for text in refs:
        name, ref = parse_model_ref(text)
        mv = source.get(name, ref) if ref else pick_default_version(source, name)
        chosen[(mv.name, mv.version)] = mv
    return list(chosen.values())


def load_version(
    source: ModelSource, mv: ModelVersion, policy: BatchPolicy, metrics: ServingMetrics
) -> LoadedVersion:
    """Read, load and warm one version's runners, and start its batcher."""
    model_bytes = source.read_artifact(mv)
    is_batchable = is_batchable_signature(mv.signature)
    if not is_batchable and policy.max_batch_size != 1:
        policy = BatchPolicy(
            max_batch_size=1,
            max_queue_delay_us=0,
            instances=policy.instances,
            intra_op_threads=policy.intra_op_threads,
            max_queue_size=policy.max_queue_size,
        )
    label = f"{mv.name}:{mv.version}"
    runners = [
        ModelRunner(model_bytes, intra_op_threads=policy.intra_op_threads, name=label)
        for _ in range(policy.instances)
    ]
    for runner in runners:
        runner.load()
        _warm_up(runner, mv.signature)
    version_metrics = metrics.for_version(mv.name, str(mv.version))
    batcher = Batcher(runners, policy, observer=version_metrics, name=label)
    version_metrics.watch_queue(lambda: float(batcher.queue_depth))
    batcher.start()
    log.info("version.loaded", extra={"model": mv.name, "version": mv.version})
    return LoadedVersion(mv, policy, batcher, version_metrics, is_batchable)


def is_batchable_signature(signature: Signature) -> bool:
    """Whether every input and output has a dynamic first (batch) dimension."""
    tensors = (*signature.inputs, *signature.outputs)
    return all(t.shape and t.shape[0] == -1 for t in tensors)


def _warm_up(runner: ModelRunner, signature: Signature) -> None:
    """Run one row of zeros so the first real request does not pay for lazy set-up."""
    inputs: dict[str, np.ndarray] = {}
    for spec in signature.inputs:
        dims = [1 if d == -1 and i == 0 else d for i, d in enumerate(spec.shape)]
        if spec.datatype == "BYTES" or any(d < 0 for d in dims):
            return  # unknown sizes or strings: nothing sensible to invent
        inputs[spec.name] = np.zeros(dims, dtype=V2_TO_NUMPY[spec.datatype])
    try:
        runner.infer(inputs)
    except MaasError:
        log.warning("version.warm_up_failed", exc_info=True)
