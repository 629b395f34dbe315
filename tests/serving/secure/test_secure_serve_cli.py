"""`maas serve` with keys in the registry, TLS flags and `--no-auth`, as a user runs it."""

from __future__ import annotations

import os
import re
import signal
import ssl
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from certificates import CertificateSet
from onnx_models import build_classifier
from secure_helpers import INFER_BODY

from maas.config import load_settings
from maas.registry.store import Registry
from maas.security.keys import KeyStore

BANNER = re.compile(r"maas serving on (https?)://127\.0\.0\.1:(\d+) \(REST\)")


def prepare_home(home: Path) -> str:
    """Register `digits` and create a key scoped to it; its token."""
    model = build_classifier(4, 3, seed=3)
    with Registry.from_settings(load_settings(home=home)) as registry:
        registry.register(
            "digits", model.model_bytes, signature=model.signature, labels=model.labels
        )
        return KeyStore(registry).create("ci", ["infer:digits"]).token


@contextmanager
def serving(home: Path, *flags: str) -> Iterator[tuple[str, int, subprocess.Popen[str]]]:
    """Run `maas serve FLAGS` until the block ends; yields (scheme, http port, process)."""
    env = {**os.environ, "MAAS_HOME": str(home), "MAAS_LOG_LEVEL": "warning"}
    command = [sys.executable, "-m", "maas", "serve", "--http-port", "0", "--grpc-port", "0"]
    with subprocess.Popen(
        [*command, *flags], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            match = BANNER.search(line)
            assert match, (line, process.stderr.read() if process.poll() is not None else "")
            yield match.group(1), int(match.group(2)), process
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=20) == 0
        finally:
            if process.poll() is None:
                process.kill()


@pytest.mark.slow
def test_serve_over_tls_requires_keys(tmp_path: Path, certificates: CertificateSet) -> None:
    token = prepare_home(tmp_path)
    flags = ("--tls-cert", str(certificates.server_cert), "--tls-key", str(certificates.server_key))
    with serving(tmp_path, *flags) as (scheme, port, _):
        url = f"https://127.0.0.1:{port}/v2/models/digits/infer"
        verify = ssl.create_default_context(cafile=str(certificates.ca_cert))
        anonymous = httpx.post(url, json=INFER_BODY, verify=verify)
        allowed = httpx.post(
            url, json=INFER_BODY, verify=verify, headers={"Authorization": f"Bearer {token}"}
        )
        health = httpx.get(f"https://127.0.0.1:{port}/v2/health/ready", verify=verify)
    assert scheme == "https"
    assert anonymous.status_code == 401
    assert allowed.status_code == 200
    assert allowed.json()["model_name"] == "digits"
    assert health.status_code == 200


@pytest.mark.slow
def test_serve_no_auth_warns_and_opens_everything(tmp_path: Path) -> None:
    prepare_home(tmp_path)  # a key exists: auth would be on
    with serving(tmp_path, "--no-auth") as (scheme, port, process):
        reply = httpx.post(f"http://127.0.0.1:{port}/v2/models/digits/infer", json=INFER_BODY)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=20)
    assert scheme == "http"
    assert reply.status_code == 200
    assert "warning: authentication is OFF (--no-auth)" in stderr


@pytest.mark.slow
def test_serve_with_a_bad_certificate_exits_with_one_line(
    tmp_path: Path, certificates: CertificateSet
) -> None:
    prepare_home(tmp_path)
    env = {**os.environ, "MAAS_HOME": str(tmp_path)}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "maas",
            "serve",
            "--tls-cert",
            str(certificates.server_cert),
            "--tls-key",
            str(certificates.client_key),
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode != 0
    assert "cannot use TLS certificate" in result.stderr
    assert "Traceback" not in result.stderr
