"""The gRPC front end imports without torch, in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys


def test_grpc_server_imports_without_torch() -> None:
    code = (
        "import sys; import maas.serving; import maas.serving.grpc.server; "
        "import maas.serving.server; "
        "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"
