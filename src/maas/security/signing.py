"""Signing model versions in the OpenSSF model-signing format (key-pair mode, offline).

A version is signed as the folder `maas models download` writes: `model.onnx` plus its extra
files, each named with the sha256 the registry recorded (the sha256 of the plaintext, so an
encrypted registry signs the same manifest). The bundle is a Sigstore bundle with a DSSE envelope
around an in-toto statement, exactly what `model_signing sign key` produces for that folder, and it
verifies with `model_signing verify key` on a downloaded copy. The manifest is built from the
recorded digests (no plaintext touches the disk); the artifact bytes themselves are checked against
those digests on every load. Keys are elliptic-curve keys (P-256, P-384, P-521) in PEM files.

model_signing's public API signs and verifies folders on disk; to sign recorded digests instead,
this module uses its key signer, verifier and manifest classes directly (`model_signing._signing`,
`manifest._FileSerialization`), which is why the dependency is pinned below 2.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from maas.actors import AnyActor
from maas.errors import IntegrityError, InvalidInput

if TYPE_CHECKING:
    from maas.config import SecuritySettings
    from maas.registry import ModelVersion, Registry

log = logging.getLogger(__name__)

MODEL_FILE = "model.onnx"


def version_digests(mv: ModelVersion) -> dict[str, str]:
    """What a signature of `mv` covers: file name -> sha256 hex."""
    return {MODEL_FILE: mv.digest, **mv.files}


def _manifest(mv: ModelVersion) -> Any:
    from model_signing import manifest
    from model_signing._hashing.hashing import Digest

    items = [
        manifest.FileManifestItem(
            path=PurePosixPath(name), digest=Digest("sha256", bytes.fromhex(d))
        )
        for name, d in sorted(version_digests(mv).items())
    ]
    # The "files" serialization of model_signing with sha256, as `model_signing sign` records it.
    serialization = manifest._FileSerialization("sha256")
    return manifest.Manifest(mv.name, items, serialization)


def public_key_id(public_pem: bytes) -> str:
    """The id model-signing gives a public key: sha256 hex of its PEM (SubjectPublicKeyInfo)."""
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_public_key(public_pem)
    pem = key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(pem).hexdigest()


@dataclass(frozen=True)
class SignedVersion:
    """The outcome of `sign_version`: which version, under which key, and the bundle (JSON)."""

    ref: str
    key_id: str
    bundle: str


def sign_version(
    registry: Registry,
    mv: ModelVersion,
    private_key: Path,
    *,
    password: str | None = None,
    actor: AnyActor = None,
) -> SignedVersion:
    """Sign `mv` with an elliptic-curve private key and store the bundle in the registry.

    Raises:
        InvalidInput: the key file cannot be read or is not a supported EC private key.
    """
    from cryptography.hazmat.primitives import serialization
    from model_signing._signing import sign_ec_key, signing

    try:
        signer = sign_ec_key.Signer(Path(private_key), password)
        private = serialization.load_pem_private_key(
            Path(private_key).read_bytes(), password.encode() if password else None
        )
    except (OSError, ValueError, TypeError) as err:
        raise InvalidInput(
            f"cannot use {private_key} as a signing key: {err} "
            "(need a PEM elliptic-curve private key: P-256, P-384 or P-521)"
        ) from err
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signature = signer.sign(signing.Payload(_manifest(mv)))
    # The key signer returns a sigstore_pb.Signature, which holds the bundle.
    bundle: str = signature.bundle.to_json()  # type: ignore[attr-defined]
    key_id = public_key_id(public_pem)
    registry.add_signature(mv, bundle, key_id, actor)
    log.info("version.signed", extra={"ref": mv.ref, "key_id": key_id})
    return SignedVersion(mv.ref, key_id, bundle)


class SignatureCheck:
    """Refuses versions without a valid signature by the trusted public key.

    Args:
        public_key: PEM file of the elliptic-curve public key signatures must verify against.

    Raises:
        InvalidInput: the key file cannot be read or is not a supported EC public key.
    """

    def __init__(self, public_key: Path) -> None:
        from model_signing._signing import sign_ec_key

        try:
            self._verifier = sign_ec_key.Verifier(Path(public_key))
        except (OSError, ValueError, TypeError) as err:
            raise InvalidInput(f"cannot use {public_key} as a signature key: {err}") from err

    def verify(self, mv: ModelVersion, bundle: str | None) -> None:
        """Accept `mv` only if `bundle` is a valid signature of exactly its recorded files.

        Raises:
            IntegrityError: unsigned, signed by another key, altered, or covering other files.
        """
        if bundle is None:
            raise IntegrityError(
                f"{mv.ref} is unsigned and signatures are required; "
                f"sign it with: maas sign {mv.ref} --private-key KEY.pem"
            )
        signed = self._signed_digests(mv, bundle)
        expected = version_digests(mv)
        if signed != expected:
            raise IntegrityError(
                f"the signature of {mv.ref} covers other files or digests than the version "
                f"records (signed: {sorted(signed)}, recorded: {sorted(expected)})"
            )

    def _signed_digests(self, mv: ModelVersion, bundle: str) -> dict[str, str]:
        from model_signing._signing import sign_sigstore_pb

        with tempfile.TemporaryDirectory(prefix="maas-sig-") as tmp:
            path = Path(tmp) / "bundle.json"
            path.write_text(bundle)
            try:
                signature = sign_sigstore_pb.Signature.read(path)
                manifest = self._verifier.verify(signature)
            except Exception as err:  # the library raises many kinds for one meaning
                raise IntegrityError(f"the signature of {mv.ref} does not verify: {err}") from err
        return {rd.identifier: rd.digest.digest_hex for rd in manifest.resource_descriptors()}


def verifier_from_settings(security: SecuritySettings) -> SignatureCheck:
    """The signature check `require_signatures` asks for.

    Raises:
        InvalidInput: signatures are required but no public key is configured.
    """
    if security.signing_public_key is None:
        raise InvalidInput(
            "MAAS_SECURITY_REQUIRE_SIGNATURES needs MAAS_SECURITY_SIGNING_PUBLIC_KEY (a PEM file)"
        )
    return SignatureCheck(security.signing_public_key)


def required_verifier(security: SecuritySettings) -> SignatureCheck | None:
    """The signature check to hand to the registry: `verifier_from_settings` when the settings
    require signatures, else None.

    Raises:
        InvalidInput: signatures are required but no public key is configured.
    """
    return verifier_from_settings(security) if security.require_signatures else None
