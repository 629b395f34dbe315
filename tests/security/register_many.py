"""A separate process for the crash tests: registers COUNT versions, optionally encrypted.

Usage: python register_many.py URL ARTIFACTS_DIR COUNT [BASE64_KEY]
Prints one line per registered version number, flushed at once.
"""

from __future__ import annotations

import sys
from pathlib import Path

from maas.registry import Registry
from maas.registry.encryption import ArtifactCipher
from maas.signature import Signature, TensorSpec

SIGNATURE = Signature((TensorSpec("x", "FP32", (-1, 4)),), (TensorSpec("y", "FP32", (-1, 3)),))


def payload(i: int) -> bytes:
    """The bytes of registration `i` (large enough for a kill to land mid-write)."""
    return f"version-{i}-".encode() * 40_000


def main() -> None:
    url, artifacts_dir, count = sys.argv[1:4]
    cipher = ArtifactCipher.from_base64(sys.argv[4]) if len(sys.argv) > 4 else None
    with Registry(url, Path(artifacts_dir), cipher=cipher) as registry:
        for i in range(int(count)):
            data = payload(i)
            mv = registry.register("crash", data, signature=SIGNATURE, files={"x.bin": data[::-1]})
            registry.set_alias("crash", "latest-good", mv.version)
            print(mv.version, flush=True)


if __name__ == "__main__":
    main()
