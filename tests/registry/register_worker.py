"""A separate process for the concurrency and crash tests: registers versions of one model.

Usage: python register_worker.py URL ARTIFACTS_DIR NAME COUNT TAG
Prints one line per registered version number, flushed at once.
"""

from __future__ import annotations

import sys
from pathlib import Path

from maas.registry import Registry
from maas.signature import Signature, TensorSpec

SIGNATURE = Signature((TensorSpec("x", "FP32", (-1, 4)),), (TensorSpec("y", "FP32", (-1, 3)),))


def main() -> None:
    url, artifacts_dir, name, count, tag = sys.argv[1:6]
    registry = Registry(url, Path(artifacts_dir))
    for i in range(int(count)):
        # Large-ish, distinct bytes: the write takes long enough for a kill to land mid-way.
        payload = f"{tag}-{i}-".encode() * 50_000
        mv = registry.register(
            name, payload, signature=SIGNATURE, files={"extra.bin": payload[::-1]}, actor=tag
        )
        print(mv.version, flush=True)
    registry.close()


if __name__ == "__main__":
    main()
