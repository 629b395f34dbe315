"""Content-addressed artifact files: layout, atomic writes, verified reads."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from maas.errors import IntegrityError
from maas.registry.artifacts import ArtifactStore


def test_write_stores_under_digest_and_reads_back(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    digest = store.write(b"model bytes")
    assert digest == hashlib.sha256(b"model bytes").hexdigest()
    assert store.path(digest) == tmp_path / "sha256" / digest[:2] / digest
    assert store.read(digest, owner="m@1") == b"model bytes"
    # No temporary files are left next to the artifact.
    assert [p.name for p in store.path(digest).parent.iterdir()] == [digest]


def test_same_bytes_are_stored_once(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    assert store.write(b"same") == store.write(b"same")
    assert len(list((tmp_path / "sha256").rglob("*"))) == 2  # one folder, one file


def test_corrupt_file_raises_integrity_error_naming_owner(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    digest = store.write(b"original")
    store.path(digest).write_bytes(b"tampered")
    with pytest.raises(IntegrityError, match=r"iris@2 .*corrupt"):
        store.read(digest, owner="iris@2 (model.onnx)")


def test_missing_file_raises_integrity_error(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    digest = store.write(b"gone soon")
    store.delete(digest)
    assert not store.exists(digest)
    with pytest.raises(IntegrityError, match="missing"):
        store.read(digest, owner="iris@1")


def test_truncated_file_is_rewritten(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    digest = store.write(b"0123456789")
    store.path(digest).write_bytes(b"0123")
    store.write(b"0123456789")
    assert store.read(digest, owner="x@1") == b"0123456789"


def test_path_refuses_non_digest(tmp_path: Path) -> None:
    with pytest.raises(IntegrityError):
        ArtifactStore(tmp_path).path("../../etc/passwd")
