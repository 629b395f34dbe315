"""`ServingConfig`: what to serve and how, resolved once from settings and a serve file."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from maas.batching.policy import BatchPolicy
from maas.config import (
    ModelServeConfig,
    ServeSettings,
    VersionPolicyConfig,
    load_serve_file,
)
from maas.generate.scheduler import GenerationLimits

_POLICY_FIELDS = (
    "max_batch_size",
    "max_queue_delay_us",
    "preferred_batch_sizes",
    "instances",
    "intra_op_threads",
    "max_queue_size",
)


@dataclass(frozen=True)
class VersionPolicy:
    """Which versions of one model stay loaded, besides every version an alias or route names.

    Attributes:
        latest: keep the N newest versions (0: none by number).
        specific: keep these version numbers.
        keep_all: keep every version.
    """

    latest: int = 1
    specific: tuple[int, ...] = ()
    keep_all: bool = False

    def choose(self, numbers: list[int]) -> set[int]:
        """The numbers to keep among the existing `numbers`."""
        if self.keep_all:
            return set(numbers)
        newest = sorted(numbers)[-self.latest :] if self.latest > 0 else []
        return set(newest) | (set(self.specific) & set(numbers))


@dataclass(frozen=True)
class ServingConfig:
    """Limits and per-model batching policies of one server.

    Attributes:
        default_policy: the policy of models without their own entry.
        policies: model name -> its policy.
        models: `NAME[@REF]` to serve when the caller names none (from a serve file).
        max_request_bytes: larger request bodies are refused (413) before decoding.
        max_response_bytes: answers estimated larger than this are refused (413 /
            RESOURCE_EXHAUSTED) before they are built.
        request_timeout_s: deadline of a request that does not bring its own.
        version_policies: model name -> which versions stay loaded (default: the newest).
        poll_interval_s: how often a server asks the registry what changed (0: never).
        grace_period_s: on shutdown, how long in-flight requests may take to finish.
        metrics_dir: the folder of metric files shared by the workers of one `maas serve
            --workers N` (None: one process, metrics in memory).
        fixed_fields: batching fields set by a flag or `MAAS_SERVE_*` variable; a tuned
            configuration stored with a version never overrides them.
        model_fields: model name -> the batching fields its serve-file entry sets (which a
            tuned configuration does not override either).
        generation: bounds of every generative version's scheduler (batch cap, waiting
            queue, KV-cache budget, the `max_tokens` cap).
    """

    default_policy: BatchPolicy = field(default_factory=BatchPolicy)
    policies: dict[str, BatchPolicy] = field(default_factory=dict)
    models: tuple[str, ...] = ()
    max_request_bytes: int = 64 * 1024 * 1024
    request_timeout_s: float = 30.0
    version_policies: dict[str, VersionPolicy] = field(default_factory=dict)
    poll_interval_s: float = 2.0
    grace_period_s: float = 30.0
    metrics_dir: Path | None = None
    fixed_fields: frozenset[str] = frozenset()
    model_fields: dict[str, frozenset[str]] = field(default_factory=dict)
    max_response_bytes: int = 64 * 1024 * 1024
    generation: GenerationLimits = field(default_factory=GenerationLimits)

    def pinned_fields(self, model: str) -> frozenset[str]:
        """The batching fields of `model` that a tuned configuration must leave alone."""
        return self.fixed_fields | self.model_fields.get(model, frozenset())

    def version_policy_for(self, model: str) -> VersionPolicy:
        """Which versions of `model` stay loaded."""
        return self.version_policies.get(model, VersionPolicy())

    def policy_for(self, model: str) -> BatchPolicy:
        """The batching policy of `model`."""
        return self.policies.get(model, self.default_policy)

    @classmethod
    def from_settings(cls, serve: ServeSettings) -> ServingConfig:
        """Merge `MAAS_SERVE_*`/flag settings with the serve file; settings given explicitly win."""
        explicit = serve.model_fields_set
        fixed = frozenset(explicit & set(_POLICY_FIELDS))
        base = {name: getattr(serve, name) for name in _POLICY_FIELDS}
        base["preferred_batch_sizes"] = tuple(serve.preferred_batch_sizes)
        max_request_bytes = serve.max_request_bytes
        max_response_bytes = serve.max_response_bytes
        request_timeout_s = serve.request_timeout_s
        if serve.config is None:
            return cls(
                default_policy=BatchPolicy(**base),
                max_request_bytes=max_request_bytes,
                max_response_bytes=max_response_bytes,
                request_timeout_s=request_timeout_s,
                poll_interval_s=serve.poll_interval_s,
                grace_period_s=serve.grace_period_s,
                metrics_dir=serve.metrics_dir,
                fixed_fields=fixed,
            )
        doc = load_serve_file(serve.config)
        if doc.max_request_bytes is not None and "max_request_bytes" not in explicit:
            max_request_bytes = doc.max_request_bytes
        if doc.max_response_bytes is not None and "max_response_bytes" not in explicit:
            max_response_bytes = doc.max_response_bytes
        if doc.request_timeout_s is not None and "request_timeout_s" not in explicit:
            request_timeout_s = doc.request_timeout_s
        default = _apply(BatchPolicy(**base), doc.defaults, keep=explicit)
        policies = {name: _apply(default, entry, keep=set()) for name, entry in doc.models.items()}
        models = tuple(
            f"{name}@{entry.ref}" if entry.ref else name for name, entry in doc.models.items()
        )
        version_policies = {
            name: _version_policy(entry.versions)
            for name, entry in doc.models.items()
            if entry.versions is not None
        }
        return cls(
            default,
            policies,
            models,
            max_request_bytes,
            request_timeout_s,
            version_policies,
            poll_interval_s=serve.poll_interval_s,
            grace_period_s=serve.grace_period_s,
            metrics_dir=serve.metrics_dir,
            fixed_fields=fixed,
            max_response_bytes=max_response_bytes,
            model_fields={
                name: frozenset(f for f in _POLICY_FIELDS if getattr(entry, f) is not None)
                for name, entry in doc.models.items()
            },
        )


def _version_policy(config: VersionPolicyConfig) -> VersionPolicy:
    if config.all:
        return VersionPolicy(latest=0, keep_all=True)
    specific = tuple(config.specific or ())
    latest = config.latest if config.latest is not None else (0 if specific else 1)
    return VersionPolicy(latest=latest, specific=specific)


def _apply(policy: BatchPolicy, entry: ModelServeConfig, *, keep: set[str]) -> BatchPolicy:
    """`policy` with the fields `entry` sets, except those in `keep`."""
    changes: dict[str, object] = {}
    for name in _POLICY_FIELDS:
        value = getattr(entry, name)
        if value is None or name in keep:
            continue
        changes[name] = tuple(value) if isinstance(value, list) else value
    return dataclasses.replace(policy, **changes)  # type: ignore[arg-type]  # validated above
