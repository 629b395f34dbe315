"""Signatures in the OpenSSF model-signing format: sign, require on load and alias, interoperate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from certificates import write_ec_keypair
from onnx_models import Classifier

from maas.config import SecuritySettings
from maas.errors import IntegrityError, InvalidInput
from maas.registry import ModelVersion, Registry
from maas.security.signing import SignatureCheck, sign_version, verifier_from_settings


@pytest.fixture
def keypair(tmp_path: Path) -> tuple[Path, Path]:
    return write_ec_keypair(tmp_path, "signing")


def two_versions(registry: Registry, classifier: Classifier) -> tuple[ModelVersion, ModelVersion]:
    first = registry.register(
        "digits", classifier.model_bytes, signature=classifier.signature, files={"a.txt": b"a"}
    )
    second = registry.register(
        "digits", classifier.model_bytes + b"\0", signature=classifier.signature
    )
    return first, second


def test_signed_versions_load_and_unsigned_are_refused(
    registry_url: str, artifacts_dir: Path, classifier: Classifier, keypair: tuple[Path, Path]
) -> None:
    private, public = keypair
    with Registry(registry_url, artifacts_dir) as plain:
        signed, unsigned = two_versions(plain, classifier)
        result = sign_version(plain, signed, private, actor="alice")
        assert result.ref == "digits@1"
        assert plain.signature_bundle(signed) == result.bundle
        assert plain.signature_bundle(unsigned) is None
        assert plain.audit_log()[-1].action == "sign"
    with Registry(registry_url, artifacts_dir, signature_verifier=SignatureCheck(public)) as strict:
        assert strict.read_artifact(signed) == classifier.model_bytes
        with pytest.raises(
            IntegrityError, match="digits@2 is unsigned and signatures are required"
        ):
            strict.read_artifact(unsigned)
        strict.set_alias("digits", "production", 1, actor="bob")
        with pytest.raises(IntegrityError, match="unsigned"):
            strict.set_alias("digits", "production", 2, actor="bob")
        assert strict.get("digits", "production").version == 1  # the alias did not move
        last = strict.audit_log()[-1]
        assert (last.action, last.target, last.outcome) == (
            "set_alias",
            "digits@production",
            "internal",
        )


def test_a_signature_by_another_key_is_refused(
    registry: Registry, classifier: Classifier, tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    signed, _ = two_versions(registry, classifier)
    other_private, _ = write_ec_keypair(tmp_path, "other")
    sign_version(registry, signed, other_private)
    check = SignatureCheck(keypair[1])
    with pytest.raises(IntegrityError, match="does not verify"):
        check.verify(signed, registry.signature_bundle(signed))


def test_a_signature_of_another_version_is_refused(
    registry: Registry, classifier: Classifier, keypair: tuple[Path, Path]
) -> None:
    first, second = two_versions(registry, classifier)
    bundle = sign_version(registry, first, keypair[0]).bundle
    with pytest.raises(IntegrityError, match="covers other files or digests"):
        SignatureCheck(keypair[1]).verify(second, bundle)


def test_an_altered_bundle_is_refused(
    registry: Registry, classifier: Classifier, keypair: tuple[Path, Path]
) -> None:
    first, _ = two_versions(registry, classifier)
    doc = json.loads(sign_version(registry, first, keypair[0]).bundle)
    payload = doc["dsseEnvelope"]["payload"]
    doc["dsseEnvelope"]["payload"] = payload[:-8] + (
        "A" * 8 if payload[-8:] != "A" * 8 else "B" * 8
    )
    with pytest.raises(IntegrityError, match="does not verify"):
        SignatureCheck(keypair[1]).verify(first, json.dumps(doc))
    with pytest.raises(IntegrityError, match="does not verify"):
        SignatureCheck(keypair[1]).verify(first, "{}")


@pytest.mark.slow
def test_the_bundle_verifies_with_the_model_signing_library(
    registry: Registry, classifier: Classifier, keypair: tuple[Path, Path], tmp_path: Path
) -> None:
    from model_signing import verifying

    first, _ = two_versions(registry, classifier)
    bundle = sign_version(registry, first, keypair[0]).bundle
    folder = tmp_path / "download"
    folder.mkdir()
    (folder / "model.onnx").write_bytes(registry.read_artifact(first))
    (folder / "a.txt").write_bytes(registry.read_file(first, "a.txt"))
    (tmp_path / "model.sig").write_text(bundle)
    config = verifying.Config().use_elliptic_key_verifier(public_key=keypair[1])
    config.verify(folder, tmp_path / "model.sig")  # raises on any mismatch
    (folder / "a.txt").write_bytes(b"b")
    with pytest.raises(ValueError, match="Signature mismatch"):
        config.verify(folder, tmp_path / "model.sig")


def test_settings_need_a_public_key(tmp_path: Path, keypair: tuple[Path, Path]) -> None:
    with pytest.raises(InvalidInput, match="needs MAAS_SECURITY_SIGNING_PUBLIC_KEY"):
        verifier_from_settings(SecuritySettings(require_signatures=True))
    check = verifier_from_settings(
        SecuritySettings(require_signatures=True, signing_public_key=keypair[1])
    )
    assert isinstance(check, SignatureCheck)
    (tmp_path / "junk.pem").write_text("junk")
    with pytest.raises(InvalidInput, match="cannot use"):
        SignatureCheck(tmp_path / "junk.pem")


def test_a_bad_private_key_is_refused(
    registry: Registry, classifier: Classifier, tmp_path: Path
) -> None:
    first, _ = two_versions(registry, classifier)
    (tmp_path / "junk.pem").write_text("junk")
    with pytest.raises(InvalidInput, match=r"cannot use .*junk\.pem as a signing key"):
        sign_version(registry, first, tmp_path / "junk.pem")
    assert registry.signature_bundle(first) is None
