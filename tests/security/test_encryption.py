"""Encryption at rest: AES-256-GCM files, same digests, clear errors, re-encryption and rotation."""

from __future__ import annotations

from pathlib import Path

import pytest
from onnx_models import Classifier
from security_helpers import new_cipher

from maas.config import SecuritySettings
from maas.errors import EncryptionError, IntegrityError, InvalidInput
from maas.registry import ModelVersion, Registry
from maas.registry.artifacts import ArtifactStore
from maas.registry.encryption import ArtifactCipher, cipher_from_settings, is_encrypted


def artifact_files(artifacts_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (artifacts_dir / "sha256").glob("??/*")}


def onnx_fragments(classifier: Classifier) -> list[bytes]:
    """Byte runs that any plaintext copy of the model contains: weights and node names."""
    return [classifier.weights.tobytes(), classifier.bias.tobytes(), b"probabilities", b"MatMul"]


def register(registry: Registry, classifier: Classifier) -> ModelVersion:
    return registry.register(
        "digits",
        classifier.model_bytes,
        signature=classifier.signature,
        files={"labels.txt": b"class_0\nclass_1\nclass_2\n"},
    )


def test_encrypted_files_hold_no_plaintext_and_read_back(
    registry_url: str, artifacts_dir: Path, classifier: Classifier
) -> None:
    cipher = new_cipher()
    with Registry(registry_url, artifacts_dir, cipher=cipher) as reg:
        mv = register(reg, classifier)
        assert reg.read_artifact(mv) == classifier.model_bytes
        assert reg.read_file(mv, "labels.txt").startswith(b"class_0")
    files = artifact_files(artifacts_dir)
    assert set(files) == {mv.digest, mv.files["labels.txt"]}
    for blob in files.values():
        assert is_encrypted(blob)
        for fragment in onnx_fragments(classifier):
            assert fragment not in blob
    assert b"class_0" not in files[mv.files["labels.txt"]]


def test_the_digest_is_that_of_the_plaintext(
    registry_url: str, tmp_path: Path, classifier: Classifier
) -> None:
    with Registry(registry_url, tmp_path / "plain") as plain:
        digest_plain = register(plain, classifier).digest
    store = ArtifactStore(tmp_path / "enc", new_cipher())
    assert store.write(classifier.model_bytes) == digest_plain
    assert store.read(digest_plain, owner="x") == classifier.model_bytes


def test_without_the_key_or_with_another_key_the_error_is_clear(
    registry_url: str, artifacts_dir: Path, classifier: Classifier
) -> None:
    cipher = new_cipher()
    with Registry(registry_url, artifacts_dir, cipher=cipher) as reg:
        mv = register(reg, classifier)
    before = artifact_files(artifacts_dir)
    with (
        Registry(registry_url, artifacts_dir) as no_key,
        pytest.raises(EncryptionError, match=f"encrypted with key {cipher.key_id}, but no key"),
    ):
        no_key.read_artifact(mv)
    other = new_cipher()
    with (
        Registry(registry_url, artifacts_dir, cipher=other) as wrong,
        pytest.raises(
            EncryptionError,
            match=f"digits@1 \\(model.onnx\\) is encrypted with key {cipher.key_id}, "
            f"the configured key is {other.key_id}",
        ),
    ):
        wrong.read_artifact(mv)
    assert artifact_files(artifacts_dir) == before  # nothing was touched


def test_a_flipped_byte_is_refused(
    registry_url: str, artifacts_dir: Path, classifier: Classifier
) -> None:
    cipher = new_cipher()
    with Registry(registry_url, artifacts_dir, cipher=cipher) as reg:
        mv = register(reg, classifier)
        path = artifacts_dir / "sha256" / mv.digest[:2] / mv.digest
        blob = bytearray(path.read_bytes())
        blob[len(blob) // 2] ^= 0x01
        path.write_bytes(bytes(blob))
        with pytest.raises(EncryptionError, match="altered or truncated"):
            reg.read_artifact(mv)


def test_a_ciphertext_moved_to_another_digest_fails(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path, new_cipher())
    a, b = store.write(b"first artifact"), store.write(b"second artifact")
    store.path(b).write_bytes(store.path(a).read_bytes())  # swap in a valid file for another digest
    with pytest.raises(EncryptionError, match="altered"):
        store.read(b, owner="b")


def test_reencrypt_converts_a_plaintext_registry(
    registry_url: str, artifacts_dir: Path, classifier: Classifier
) -> None:
    with Registry(registry_url, artifacts_dir) as plain:
        mv = register(plain, classifier)
    assert classifier.model_bytes in artifact_files(artifacts_dir).values()
    cipher = new_cipher()
    with Registry(registry_url, artifacts_dir, cipher=cipher) as reg:
        assert reg.read_artifact(mv) == classifier.model_bytes  # plaintext still readable
        report = reg.reencrypt_artifacts(actor="ops")
        assert (report.encrypted, report.rotated, report.unchanged) == (2, 0, 0)
        again = reg.reencrypt_artifacts()
        assert (again.encrypted, again.rotated, again.unchanged) == (0, 0, 2)
        assert reg.get("digits", 1).digest == mv.digest  # versions are unchanged
        assert reg.read_artifact(mv) == classifier.model_bytes
        assert [(e.action, e.actor, e.outcome) for e in reg.audit_log()][-2:] == [
            ("encrypt", "ops", "ok"),
            ("encrypt", None, "ok"),
        ]
    for blob in artifact_files(artifacts_dir).values():
        assert is_encrypted(blob)
        assert classifier.weights.tobytes() not in blob
    assert not list((artifacts_dir / "sha256").glob("??/.tmp-*"))


def test_rotation_with_a_wrong_old_key_touches_nothing(
    registry_url: str, artifacts_dir: Path, classifier: Classifier
) -> None:
    old, new = new_cipher(), new_cipher()
    with Registry(registry_url, artifacts_dir, cipher=old) as reg:
        mv = register(reg, classifier)
    before = artifact_files(artifacts_dir)
    with Registry(registry_url, artifacts_dir, cipher=new) as reg:
        with pytest.raises(EncryptionError, match=f"encrypted with key {old.key_id}.*nothing"):
            reg.reencrypt_artifacts([new_cipher()])
        assert artifact_files(artifacts_dir) == before
        assert reg.audit_log()[-1].outcome == "internal"  # the refusal is audited
        report = reg.reencrypt_artifacts([old])
        assert (report.encrypted, report.rotated) == (0, 2)
        assert reg.read_artifact(mv) == classifier.model_bytes
    stale = Registry(registry_url, artifacts_dir, cipher=old)
    try:
        with pytest.raises(EncryptionError, match=f"the configured key is {old.key_id}"):
            stale.read_artifact(mv)
    finally:
        stale.close()


def test_reencrypt_needs_a_key(tmp_path: Path) -> None:
    with pytest.raises(EncryptionError, match="no encryption key is configured"):
        ArtifactStore(tmp_path).reencrypt()


def test_a_corrupt_plaintext_file_stops_encryption_before_any_write(tmp_path: Path) -> None:
    plain = ArtifactStore(tmp_path)
    good, bad = plain.write(b"good bytes"), plain.write(b"bad bytes")
    plain.path(bad).write_bytes(b"BAD bytes")
    with pytest.raises(IntegrityError, match="nothing was changed"):
        ArtifactStore(tmp_path, new_cipher()).reencrypt()
    assert plain.path(good).read_bytes() == b"good bytes"


@pytest.mark.parametrize(
    ("text", "message"),
    [("not base64!", "not valid base64"), ("AAAA", "must be base64 of 32 bytes")],
)
def test_bad_keys_are_refused(text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        ArtifactCipher.from_base64(text)


def test_key_from_settings_env_or_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import base64
    import os

    text = base64.b64encode(os.urandom(32)).decode()
    monkeypatch.setenv("MAAS_ENCRYPTION_KEY", text)
    from_env = cipher_from_settings(SecuritySettings())
    assert from_env is not None
    assert from_env.key_id == ArtifactCipher.from_base64(text).key_id
    assert text not in repr(from_env)
    monkeypatch.delenv("MAAS_ENCRYPTION_KEY")
    (tmp_path / "key").write_text(text + "\n")
    from_file = cipher_from_settings(SecuritySettings(encryption_key_file=tmp_path / "key"))
    assert from_file is not None
    assert from_file.key_id == from_env.key_id
    assert cipher_from_settings(SecuritySettings()) is None
    with pytest.raises(InvalidInput, match="not both"):
        cipher_from_settings(
            SecuritySettings(encryption_key=text, encryption_key_file=tmp_path / "key")
        )
