"""The batching policy a version is served with: settings, or the configuration tuned with it.

`maas tune` stores a configuration with a version for the machine it measured on (its hardware
profile). A server on a machine with the same profile applies the stored batching fields,
except those a flag, a `MAAS_SERVE_*` variable or the model's serve-file entry sets: what the
operator says wins. Each load logs which configuration it used.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from maas.batching.policy import BatchPolicy
from maas.errors import MaasError
from maas.runtime.hardware import hardware_profile
from maas.serving.options import ServingConfig

if TYPE_CHECKING:
    from maas.registry.versions import ModelVersion

log = logging.getLogger(__name__)

TUNABLE_FIELDS = ("max_batch_size", "max_queue_delay_us", "instances", "intra_op_threads")


class StoredConfig(Protocol):
    """A stored configuration as the registry returns it."""

    @property
    def config(self) -> dict[str, Any]: ...


@runtime_checkable
class TunedConfigs(Protocol):
    """The part of the registry that keeps tuned configurations."""

    def get_serving_config(self, name: str, version: int, profile: str) -> StoredConfig | None: ...


def policy_for_version(
    config: ServingConfig, source: object, mv: ModelVersion, profile: str | None = None
) -> BatchPolicy:
    """The batching policy to load `mv` with.

    Args:
        config: the server's settings (the model's policy and the fields pinned by the operator).
        source: the registry; a source without tuned configurations gives the settings' policy.
        mv: the version to load.
        profile: the hardware profile to look up; None: this machine's.
    """
    policy = config.policy_for(mv.name)
    if not isinstance(source, TunedConfigs):
        return policy
    key = profile if profile is not None else hardware_profile().key
    try:
        stored = source.get_serving_config(mv.name, mv.version, key)
    except MaasError as err:  # the version vanished meanwhile: loading it will say so
        log.warning("serving_config.unreadable", extra={"model": mv.ref, "reason": str(err)})
        return policy
    if stored is None:
        log.info("serving_config.settings", extra={"model": mv.ref, "profile": key})
        return policy
    return apply_tuned(policy, stored.config, config.pinned_fields(mv.name), mv.ref, key)


def apply_tuned(
    policy: BatchPolicy, tuned: Mapping[str, Any], pinned: frozenset[str], ref: str, profile: str
) -> BatchPolicy:
    """`policy` with the tuned batching fields that are not pinned; unusable values are logged
    and the settings' policy is kept."""
    changes = {
        name: tuned[name]
        for name in TUNABLE_FIELDS
        if name in tuned and name not in pinned and isinstance(tuned[name], int)
    }
    try:
        result = dataclasses.replace(policy, **changes)
    except MaasError as err:  # a stored value out of range: serve with the settings instead
        log.warning("serving_config.invalid", extra={"model": ref, "reason": str(err)})
        return policy
    log.info(
        "serving_config.tuned",
        extra={"model": ref, "profile": profile, "applied": changes, "pinned": sorted(pinned)},
    )
    return result
