"""The serving stack imports without torch (a serving install has none)."""

from __future__ import annotations

import subprocess
import sys

SERVING_PACKAGES = [
    "maas.serving",
    "maas.generate",
    "maas.runtime",
    "maas.batching",
    "maas.protocol",
    "maas.metrics",
]

PROBE = """
import importlib, pkgutil, sys
names = sys.argv[1:]
for name in names:
    package = importlib.import_module(name)
    for module in pkgutil.walk_packages(package.__path__, name + "."):
        importlib.import_module(module.name)
import maas.cli.serve
print(sorted(m for m in sys.modules if m == "torch" or m.startswith("torch.")))
print(len([m for m in sys.modules if m.startswith("maas.serving")]))
"""


def test_serving_imports_without_torch() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *SERVING_PACKAGES],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    torch_modules, serving_count = result.stdout.splitlines()
    assert torch_modules == "[]"
    assert int(serving_count) >= 8  # the walk really imported the serving modules
