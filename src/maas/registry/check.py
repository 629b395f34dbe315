"""`maas registry check`: every version row has its artifact and files, intact and decryptable;
every alias points at an existing version.

Files that no version references (left by a registration that crashed before its commit) are
reported as notes, not problems: the registry is consistent with them, and a later registration
of the same bytes reuses them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from maas.errors import EncryptionError, IntegrityError, ModelNotFound
from maas.registry.store import Registry
from maas.registry.versions import ModelVersion

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CheckReport:
    """What `check_registry` found.

    Attributes:
        versions: how many version rows were checked.
        files: how many artifact reads were checked (model.onnx and extra files).
        problems: one line per inconsistency (empty: the registry is sound).
        notes: harmless findings (unreferenced files).
    """

    versions: int
    files: int
    problems: tuple[str, ...]
    notes: tuple[str, ...] = field(default=())

    @property
    def is_consistent(self) -> bool:
        """Whether no problem was found."""
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready document (what `maas registry check --json` prints)."""
        return {
            "consistent": self.is_consistent,
            "versions": self.versions,
            "files": self.files,
            "problems": list(self.problems),
            "notes": list(self.notes),
        }


def _read(registry: Registry, mv: ModelVersion, filename: str | None) -> bytes:
    """The version's artifact (filename None) or one of its files, verified."""
    if filename is None:
        return registry.read_artifact(mv)
    return registry.read_file(mv, filename)


def check_registry(registry: Registry) -> CheckReport:
    """Read back every version's artifact and files and every alias; report what is wrong.

    Every artifact is decrypted (when encrypted) and checked against its digest in memory.
    """
    problems: list[str] = []
    referenced: set[str] = set()
    versions = files = 0
    for summary in registry.list_models():
        found = {mv.version: mv for mv in registry.list_versions(summary.name)}
        for mv in found.values():
            versions += 1
            referenced.update([mv.digest, *mv.files.values()])
            for filename in (None, *sorted(mv.files)):
                files += 1
                try:
                    _read(registry, mv, filename)
                except (IntegrityError, EncryptionError, ModelNotFound) as err:
                    problems.append(f"{mv.ref} {filename or 'model.onnx'}: {err}")
        for alias, version in sorted(summary.aliases.items()):
            if version not in found:
                problems.append(f"{summary.name}@{alias} points at missing version {version}")
    stray = sorted(set(registry.stored_digests()) - referenced)
    notes = tuple(f"unreferenced artifact file sha256 {d}" for d in stray)
    log.info("registry.checked", extra={"versions": versions, "problems": len(problems)})
    return CheckReport(versions, files, tuple(problems), notes)
