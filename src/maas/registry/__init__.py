"""The model registry: immutable versions, aliases, lineage in SQL; artifacts on disk by digest."""

from maas.registry.refs import ModelRef, parse_ref
from maas.registry.store import Registry
from maas.registry.versions import AliasEvent, AuditEntry, ModelSummary, ModelVersion

__all__ = [
    "AliasEvent",
    "AuditEntry",
    "ModelRef",
    "ModelSummary",
    "ModelVersion",
    "Registry",
    "parse_ref",
]
