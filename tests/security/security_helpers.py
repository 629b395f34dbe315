"""Helpers for the security tests: artifact keys and the Redis address (signing key pairs come
from the shared `certificates` helper)."""

from __future__ import annotations

import base64
import os

from maas.registry.encryption import ArtifactCipher

REDIS_URL = "redis://127.0.0.1:6379/0"  # the Redis every test machine runs


def new_cipher() -> ArtifactCipher:
    """A fresh random AES-256 key."""
    return ArtifactCipher.from_base64(base64.b64encode(os.urandom(32)).decode())
