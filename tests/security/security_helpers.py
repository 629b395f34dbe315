"""Helpers for the security tests: keys and the Redis address."""

from __future__ import annotations

import base64
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from maas.registry.encryption import ArtifactCipher

REDIS_URL = "redis://127.0.0.1:6379/0"  # the Redis every test machine runs


def new_cipher() -> ArtifactCipher:
    """A fresh random AES-256 key."""
    return ArtifactCipher.from_base64(base64.b64encode(os.urandom(32)).decode())


def write_ec_keypair(folder: Path, name: str) -> tuple[Path, Path]:
    """A new P-256 key pair as PEM files: (private, public)."""
    key = ec.generate_private_key(ec.SECP256R1())
    private = folder / f"{name}.pem"
    public = folder / f"{name}.pub.pem"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public
