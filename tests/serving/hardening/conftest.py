"""Hardening fixtures: `maas serve` in a subprocess (so its memory can be read from /proc), over a
registry with one model and an admin key."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from onnx_models import build_classifier

from maas.config import load_settings
from maas.registry.store import Registry
from maas.security.keys import KeyStore

BANNER = re.compile(r"maas serving on http://127\.0\.0\.1:(\d+) \(REST\) and 127\.0\.0\.1:(\d+)")
REQUEST_TIMEOUT_S = 2  # slow bodies are cut off after this
MAX_REQUEST_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class LiveServer:
    """A running `maas serve` process."""

    url: str
    grpc_address: str
    pid: int
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def rss_kib(self) -> int:
        """The server's resident memory, from /proc/<pid>/status."""
        status = Path(f"/proc/{self.pid}/status").read_text()
        found = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
        assert found, status
        return int(found.group(1))

    def is_alive(self) -> bool:
        return httpx.get(f"{self.url}/v2/health/live", timeout=10).status_code == 200


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """`maas serve` over a fresh home with `digits` (4 features, 3 classes) and an admin key."""
    home = tmp_path_factory.mktemp("hardening-home")
    model = build_classifier(4, 3, seed=21)
    with Registry.from_settings(load_settings(home=home)) as registry:
        registry.register(
            "digits", model.model_bytes, signature=model.signature, labels=model.labels
        )
        token = KeyStore(registry).create("fuzz", ["admin"]).token
    env = {
        **os.environ,
        "MAAS_HOME": str(home),
        "MAAS_LOG_LEVEL": "error",
        "MAAS_SERVE_REQUEST_TIMEOUT_S": str(REQUEST_TIMEOUT_S),
        "MAAS_SERVE_MAX_REQUEST_BYTES": str(MAX_REQUEST_BYTES),
    }
    command = [sys.executable, "-m", "maas", "serve", "--http-port", "0", "--grpc-port", "0"]
    with subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    ) as process:
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            match = BANNER.search(line)
            assert match, line
            yield LiveServer(
                f"http://127.0.0.1:{match.group(1)}",
                f"127.0.0.1:{match.group(2)}",
                process.pid,
                token,
            )
            assert process.poll() is None, "the server died during the tests"
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == 0
        finally:
            if process.poll() is None:
                process.kill()
