"""Hardening fixtures: `maas serve` in a subprocess (so its memory can be read from /proc), over a
registry with one model and an admin key."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hardening_helpers import MAX_REQUEST_BYTES, REQUEST_TIMEOUT_S, LiveServer, serve_home
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
        "MAAS_SERVE_REQUEST_TIMEOUT_S": str(REQUEST_TIMEOUT_S),
        "MAAS_SERVE_MAX_REQUEST_BYTES": str(MAX_REQUEST_BYTES),
    }
    with serve_home(home, token, env) as server:
        yield server
