"""What one registered model version is: immutable facts about it, read back from the registry."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from maas.signature import Signature


@dataclass(frozen=True)
class ModelVersion:
    """One immutable version of a model.

    Attributes:
        name: the model's name.
        version: its number, 1, 2, ... per model.
        digest: sha256 hex of the ONNX artifact.
        size_bytes: size of the ONNX artifact.
        signature: input and output tensors (v2 datatypes, -1 for the batch).
        labels: class labels, index i names output column i ([] for non-classifiers).
        metrics: recorded measures such as `test_accuracy`.
        lineage: spec, dataset fingerprint, parent version, package and exporter versions, run id.
        files: extra artifacts kept with the version (name -> sha256), e.g. `weights.safetensors`.
        created_at: when it was registered (UTC).
        aliases: aliases that point at it now.
    """

    name: str
    version: int
    digest: str
    size_bytes: int
    signature: Signature
    labels: tuple[str, ...]
    metrics: dict[str, float]
    lineage: dict[str, Any]
    files: dict[str, str]
    created_at: datetime
    aliases: tuple[str, ...] = field(default=())

    @property
    def ref(self) -> str:
        """`name@version`, the way users write it."""
        return f"{self.name}@{self.version}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready document (what `maas models show --json` prints)."""
        return {
            "name": self.name,
            "version": self.version,
            "digest": self.digest,
            "size_bytes": self.size_bytes,
            "signature": self.signature.to_dict(),
            "labels": list(self.labels),
            "metrics": dict(self.metrics),
            "lineage": dict(self.lineage),
            "files": dict(self.files),
            "created_at": self.created_at.isoformat(),
            "aliases": list(self.aliases),
        }


@dataclass(frozen=True)
class ModelSummary:
    """One model as `maas models list` shows it.

    Attributes:
        name: the model's name.
        latest_version: its highest existing version number.
        version_count: how many versions exist.
        aliases: alias -> version number.
    """

    name: str
    latest_version: int
    version_count: int
    aliases: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready document."""
        return {
            "name": self.name,
            "latest_version": self.latest_version,
            "version_count": self.version_count,
            "aliases": dict(self.aliases),
        }


@dataclass(frozen=True)
class AliasEvent:
    """One move of an alias: `old_version` None means created, `new_version` None means removed."""

    name: str
    alias: str
    old_version: int | None
    new_version: int | None
    at: datetime
    actor: str | None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready document."""
        return {
            "name": self.name,
            "alias": self.alias,
            "old_version": self.old_version,
            "new_version": self.new_version,
            "at": self.at.isoformat(),
            "actor": self.actor,
        }


@dataclass(frozen=True)
class AuditEntry:
    """One row of the append-only audit trail of registry changes.

    `actor_kind` and `actor_key_id` are those of `Actor` (None: not recorded, as in rows
    written before they were).
    """

    at: datetime
    actor: str | None
    action: str
    target: str
    outcome: str
    source: str
    actor_kind: str | None = None
    actor_key_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready document."""
        return {
            "at": self.at.isoformat(),
            "actor": self.actor,
            "actor_kind": self.actor_kind,
            "actor_key_id": self.actor_key_id,
            "action": self.action,
            "target": self.target,
            "outcome": self.outcome,
            "source": self.source,
        }
