"""Encryption at rest for artifact files: AES-256-GCM with a small header naming the key.

File layout: `MAGIC (8 bytes) | key id (8 bytes) | nonce (12 bytes) | ciphertext + tag (16 bytes)`.
The key id is a fingerprint of the key (not the key), so a file written under another key fails
with an error naming both ids. The associated data binds the ciphertext to its header and to the
sha256 of its plaintext (the artifact's address), so a file moved to another digest's path fails
to decrypt. Decrypted bytes live only in memory.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from maas.errors import EncryptionError, InvalidInput

if TYPE_CHECKING:
    from maas.config import SecuritySettings

MAGIC = b"MAASAES1"
KEY_BYTES = 32  # AES-256
KEY_ID_BYTES = 8
NONCE_BYTES = 12  # 96-bit random nonces, the size GCM is designed for
TAG_BYTES = 16
HEADER_BYTES = len(MAGIC) + KEY_ID_BYTES + NONCE_BYTES
OVERHEAD_BYTES = HEADER_BYTES + TAG_BYTES


def is_encrypted(blob: bytes) -> bool:
    """Whether `blob` starts with the encrypted-artifact header."""
    return blob[: len(MAGIC)] == MAGIC


def key_id_of(blob: bytes) -> str | None:
    """The key id (hex) an encrypted blob names in its header; None for plaintext."""
    if not is_encrypted(blob) or len(blob) < HEADER_BYTES:
        return None
    return blob[len(MAGIC) : len(MAGIC) + KEY_ID_BYTES].hex()


@dataclass(frozen=True, repr=False)
class ArtifactCipher:
    """One AES-256-GCM key and the id it is known by.

    Args:
        key: 32 secret bytes.
    """

    key: bytes

    def __post_init__(self) -> None:
        if len(self.key) != KEY_BYTES:
            raise InvalidInput(
                f"the encryption key must be {KEY_BYTES} bytes (base64 of 32 random bytes), "
                f"got {len(self.key)} bytes"
            )

    def __repr__(self) -> str:  # never show the key itself
        return f"ArtifactCipher(key_id={self.key_id})"

    @classmethod
    def from_base64(cls, text: str, *, what: str = "MAAS_ENCRYPTION_KEY") -> ArtifactCipher:
        """A cipher from the base64 text of a key.

        Raises:
            InvalidInput: `text` is not base64 of exactly 32 bytes (names `what`).
        """
        try:
            key = base64.b64decode(text.strip(), validate=True)
        except (binascii.Error, ValueError) as err:
            raise InvalidInput(f"{what} is not valid base64: {err}") from err
        if len(key) != KEY_BYTES:
            raise InvalidInput(
                f"{what} must be base64 of {KEY_BYTES} bytes, got {len(key)} bytes; "
                "make one with: openssl rand -base64 32"
            )
        return cls(key)

    @classmethod
    def from_file(cls, path: Path) -> ArtifactCipher:
        """A cipher from a file holding the base64 text of a key."""
        try:
            text = Path(path).read_text()
        except OSError as err:
            raise InvalidInput(f"cannot read the encryption key file {path}: {err}") from err
        return cls.from_base64(text, what=f"encryption key file {path}")

    @property
    def key_id(self) -> str:
        """A public fingerprint of the key: 16 hex digits."""
        return hashlib.sha256(b"maas-artifact-key:" + self.key).digest()[:KEY_ID_BYTES].hex()

    def encrypt(self, plaintext: bytes, digest: str) -> bytes:
        """The stored form of `plaintext`, whose sha256 hex is `digest`."""
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        header = MAGIC + bytes.fromhex(self.key_id)
        nonce = os.urandom(NONCE_BYTES)
        sealed = AESGCM(self.key).encrypt(nonce, plaintext, header + digest.encode())
        return header + nonce + sealed

    def decrypt(self, blob: bytes, digest: str, owner: str) -> bytes:
        """The plaintext of a stored blob.

        Raises:
            EncryptionError: the blob names another key, or fails authentication (tampered,
                truncated, or stored under another digest).
        """
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        found = key_id_of(blob)
        if found != self.key_id:
            raise EncryptionError(
                f"artifact of {owner} is encrypted with key {found}, "
                f"the configured key is {self.key_id}"
            )
        header, nonce = (
            blob[: HEADER_BYTES - NONCE_BYTES],
            blob[HEADER_BYTES - NONCE_BYTES : HEADER_BYTES],
        )
        try:
            return AESGCM(self.key).decrypt(nonce, blob[HEADER_BYTES:], header + digest.encode())
        except InvalidTag as err:
            raise EncryptionError(
                f"artifact of {owner} fails decryption with key {self.key_id}: "
                "the file was altered or truncated (sha256 " + digest + ")"
            ) from err


def cipher_from_settings(security: SecuritySettings) -> ArtifactCipher | None:
    """The cipher the settings configure (`MAAS_ENCRYPTION_KEY` or a key file), or None.

    Raises:
        InvalidInput: both are set, or the key is malformed.
    """
    if security.encryption_key is not None and security.encryption_key_file is not None:
        raise InvalidInput(
            "set either MAAS_ENCRYPTION_KEY or MAAS_SECURITY_ENCRYPTION_KEY_FILE, not both"
        )
    if security.encryption_key is not None:
        return ArtifactCipher.from_base64(security.encryption_key.get_secret_value())
    if security.encryption_key_file is not None:
        return ArtifactCipher.from_file(security.encryption_key_file)
    return None
