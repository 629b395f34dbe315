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
