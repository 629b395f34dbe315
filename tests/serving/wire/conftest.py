"""Wire-test fixtures: `maas serve` in a subprocess (so its memory can be read from /proc and an
attack on it cannot slow the test's own event loop), over a registry with `iris` and API keys,
in plain HTTP and over TLS."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from certificates import CertificateSet, make_certificates
from onnx_models import build_classifier
from wire_helpers import MAX_REQUEST_BYTES, MODEL, LiveServer

from maas.config import load_settings
from maas.registry.store import Registry
from maas.security.keys import KeyStore

BANNER = re.compile(r"maas serving on (https?)://127\.0\.0\.1:(\d+) \(REST\)")


def prepare_home(home: Path) -> dict[str, str]:
    """Register `iris`; create `admin` (every scope) and `other` (no access to `iris`)."""
    model = build_classifier(4, 3, seed=5)
    with Registry.from_settings(load_settings(home=home)) as registry:
        registry.register(MODEL, model.model_bytes, signature=model.signature, labels=model.labels)
        store = KeyStore(registry)
        return {
            "admin": store.create("admin", ["admin"]).token,
            "other": store.create("other", ["infer:other"]).token,
        }


@contextmanager
def serving(home: Path, *flags: str) -> Iterator[LiveServer]:
    """`maas serve FLAGS` over `home` until the block ends."""
    tokens = prepare_home(home)
    env = {
        **os.environ,
        "MAAS_HOME": str(home),
        "MAAS_LOG_LEVEL": "error",
        "MAAS_SERVE_MAX_REQUEST_BYTES": str(MAX_REQUEST_BYTES),
    }
    command = [sys.executable, "-m", "maas", "serve", "--http-port", "0", "--grpc-port", "0"]
    command += ["--poll-interval", "0", *flags]
    with subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    ) as process:
        try:
            assert process.stdout is not None
            match = BANNER.search(process.stdout.readline())
            assert match, "maas serve did not start"
            yield LiveServer(int(match.group(2)), process.pid, tokens, match.group(1))
            assert process.poll() is None, "the server died during the tests"
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == 0
        finally:
            if process.poll() is None:
                process.kill()


@pytest.fixture(scope="session")
def wire_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """`maas serve` over plain HTTP, with API keys and a 1 MiB request limit."""
    with serving(tmp_path_factory.mktemp("wire-home")) as server:
        yield server


@pytest.fixture(scope="session")
def wire_certificates(tmp_path_factory: pytest.TempPathFactory) -> CertificateSet:
    return make_certificates(tmp_path_factory.mktemp("wire-tls"))


@pytest.fixture(scope="session")
def tls_wire_server(
    tmp_path_factory: pytest.TempPathFactory, wire_certificates: CertificateSet
) -> Iterator[LiveServer]:
    """`maas serve` over TLS, otherwise like `wire_server`."""
    certs = wire_certificates
    flags = ("--tls-cert", str(certs.server_cert), "--tls-key", str(certs.server_key))
    with serving(tmp_path_factory.mktemp("wire-tls-home"), *flags) as server:
        yield server
