"""Hardening fixtures: `maas serve` in a subprocess (so its memory can be read from /proc), over a
registry with one model and an admin key."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest
from hardening_helpers import BANNER, MAX_REQUEST_BYTES, REQUEST_TIMEOUT_S, LiveServer
from onnx_models import build_classifier

from maas.config import load_settings
from maas.registry.store import Registry
from maas.security.keys import KeyStore


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
