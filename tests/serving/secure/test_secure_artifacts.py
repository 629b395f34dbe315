"""Artifacts on the serving path: encrypted at rest, and a tampered version refused while the
previous one keeps serving."""

from __future__ import annotations

import base64
import logging
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from onnx_models import Classifier, build_classifier
from secure_helpers import INFER_BODY, guard_for, start_served, stop_served

from maas.config import load_settings
from maas.registry.artifacts import ArtifactStore
from maas.registry.encryption import ArtifactCipher
from maas.registry.store import Registry
from maas.security.keys import KeyStore
from maas.serving.protection import Protection


def flip_one_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.fixture(params=["plain", "encrypted"])
def cipher(request: pytest.FixtureRequest) -> ArtifactCipher | None:
    if request.param == "plain":
        return None
    return ArtifactCipher.from_base64(base64.b64encode(os.urandom(32)).decode())


@pytest.fixture
def registry_with_digits(
    tmp_path: Path, cipher: ArtifactCipher | None, digits_model: Classifier
) -> Iterator[Registry]:
    registry = Registry(
        f"sqlite:///{tmp_path / 'registry.db'}", tmp_path / "artifacts", cipher=cipher
    )
    registry.register(
        "digits",
        digits_model.model_bytes,
        signature=digits_model.signature,
        labels=digits_model.labels,
    )
    yield registry
    registry.close()


async def test_a_tampered_version_is_refused_and_the_previous_keeps_serving(
    registry_with_digits: Registry,
    cipher: ArtifactCipher | None,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    admin = f"Bearer {KeyStore(registry_with_digits).create('admin', ['admin']).token}"
    served = await start_served(registry_with_digits, Protection(guard_for(registry_with_digits)))
    try:
        newer = build_classifier(features=4, classes=3, seed=99)
        v2 = registry_with_digits.register(
            "digits", newer.model_bytes, signature=newer.signature, labels=newer.labels
        )
        flip_one_byte(ArtifactStore(tmp_path / "artifacts").path(v2.digest))
        with caplog.at_level(logging.ERROR, logger="maas.serving.manager"):
            await served.manager.refresh()
        async with httpx.AsyncClient(base_url=served.http_url, timeout=10) as client:
            auth = {"Authorization": admin}
            reply = await client.post("/v2/models/digits/infer", json=INFER_BODY, headers=auth)
            metadata = (await client.get("/v2/models/digits", headers=auth)).json()
            metrics = (await client.get("/metrics", headers=auth)).text
    finally:
        await stop_served(served)
    assert reply.status_code == 200
    assert reply.headers["x-model-version"] == "1"  # the previous version keeps serving
    failure = metadata["parameters"]["load_failures"]["2"]
    expected = "could not be decrypted|decrypt" if cipher is not None else "corrupt"
    assert re.search(expected, failure), failure
    assert 'maas_version_load_failures_total{model="digits",version="2"} 1.0' in metrics
    failed = [r for r in caplog.records if r.getMessage() == "version.load_failed"]
    assert [getattr(r, "version", None) for r in failed] == [2]


def test_encrypted_artifacts_hold_no_onnx_plaintext(
    tmp_path: Path, digits_model: Classifier
) -> None:
    cipher = ArtifactCipher.from_base64(base64.b64encode(os.urandom(32)).decode())
    plain_dir, sealed_dir = tmp_path / "plain", tmp_path / "sealed"
    for folder, with_cipher in ((plain_dir, None), (sealed_dir, cipher)):
        with Registry(
            f"sqlite:///{folder / 'registry.db'}", folder / "artifacts", cipher=with_cipher
        ) as registry:
            registry.register("digits", digits_model.model_bytes, signature=digits_model.signature)
    (plain,) = [
        p.read_bytes() for p in (plain_dir / "artifacts" / "sha256").rglob("*") if p.is_file()
    ]
    (sealed,) = [
        p.read_bytes() for p in (sealed_dir / "artifacts" / "sha256").rglob("*") if p.is_file()
    ]
    assert b"MatMul" in plain  # the control: ONNX protobuf names its operators in the clear
    assert b"MatMul" not in sealed
    assert digits_model.model_bytes[:32] not in sealed


@pytest.mark.slow
def test_maas_serve_needs_the_encryption_key(tmp_path: Path, digits_model: Classifier) -> None:
    key = base64.b64encode(os.urandom(32)).decode()
    env = {**os.environ, "MAAS_HOME": str(tmp_path), "MAAS_LOG_LEVEL": "warning"}
    with Registry.from_settings(
        load_settings(home=tmp_path, security={"encryption_key": key})
    ) as reg:
        reg.register("digits", digits_model.model_bytes, signature=digits_model.signature)
    command = [sys.executable, "-m", "maas", "serve", "--http-port", "0", "--grpc-port", "0"]
    refused = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert refused.returncode != 0
    assert "is encrypted with key" in refused.stderr
    assert "MAAS_ENCRYPTION_KEY" in refused.stderr
    assert "Traceback" not in refused.stderr
    with subprocess.Popen(
        command,
        env={**env, "MAAS_ENCRYPTION_KEY": key},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            port = re.search(r"http://127\.0\.0\.1:(\d+)", line)
            assert port, line
            reply = httpx.post(
                f"http://127.0.0.1:{port.group(1)}/v2/models/digits/infer", json=INFER_BODY
            )
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=20) == 0
        finally:
            if process.poll() is None:
                process.kill()
    assert reply.status_code == 200
    assert reply.json()["model_name"] == "digits"
