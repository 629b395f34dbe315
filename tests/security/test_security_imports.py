"""The security package imports without torch, and heavy libraries load only when used."""

from __future__ import annotations

import subprocess
import sys


def test_security_imports_without_torch_or_signing_libraries() -> None:
    code = (
        "import sys\n"
        "import maas.security.auth, maas.security.acl, maas.security.keys\n"
        "import maas.security.ratelimit, maas.security.signing, maas.registry.check\n"
        "import maas.cli.keys, maas.cli.audit, maas.cli.sign, maas.cli.registry_admin\n"
        "print(sorted(m for m in ('torch', 'model_signing', 'redis', 'jwt') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
