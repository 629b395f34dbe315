"""`maas serve` as a user meets it: help, the printed ports, real inference, a clean SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
from cli_helpers import run
from onnx_models import build_classifier

from maas.config import load_settings
from maas.registry.store import Registry

BANNER = re.compile(r"maas serving on http://127\.0\.0\.1:(\d+) \(REST\) and 127\.0\.0\.1:(\d+)")


def test_serve_help_names_the_options() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "maas", "serve", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for option in ("--host", "--http-port", "--grpc-port", "--model", "--config"):
        assert option in result.stdout


def register_classifier(home: Path) -> tuple[np.ndarray, np.ndarray]:
    classifier = build_classifier(4, 3, seed=5)
    with Registry.from_settings(load_settings(home=home)) as registry:
        registry.register(
            "iris", classifier.model_bytes, signature=classifier.signature, labels=classifier.labels
        )
    x = np.arange(8, dtype=np.float32).reshape(2, 4) / 8
    return np.asarray(classifier.expected(x)), x


@pytest.mark.slow
def test_serve_prints_ports_answers_and_stops_on_sigterm(tmp_path: Path) -> None:
    expected, x = register_classifier(tmp_path)
    env = {**os.environ, "MAAS_HOME": str(tmp_path), "MAAS_LOG_LEVEL": "warning"}
    command = [sys.executable, "-m", "maas", "serve", "--http-port", "0", "--grpc-port", "0"]
    with subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            match = BANNER.search(line)
            assert match, line
            http_port = int(match.group(1))
            assert int(match.group(2)) != http_port
            tensor = {"name": "input", "datatype": "FP32", "shape": [2, 4], "data": x.tolist()}
            url = f"http://127.0.0.1:{http_port}/v2/models/iris/infer"
            reply = httpx.post(url, json={"inputs": [tensor]})
            assert reply.status_code == 200
            probabilities = reply.json()["outputs"][0]
            assert probabilities["name"] == "probabilities"
            got = np.reshape(probabilities["data"], (2, 3))
            np.testing.assert_allclose(got, expected, atol=1e-5)
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=20) == 0
        finally:
            if process.poll() is None:
                process.kill()


def test_serve_unknown_model_exits_2_with_one_line(tmp_path: Path) -> None:
    register_classifier(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "maas", "serve", "--model", "nope", "--http-port", "0"],
        env={**os.environ, "MAAS_HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "nope" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_with_a_bad_serve_file_exits_2_with_one_line(tmp_path: Path) -> None:
    config = tmp_path / "serve.yaml"
    config.write_text("models:\n  iris: {max_batch: 3}\n")
    result = subprocess.run(
        [sys.executable, "-m", "maas", "serve", "--config", str(config)],
        env={**os.environ, "MAAS_HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: serve file {config} is invalid: models.iris.max_batch: "
        "Extra inputs are not permitted"
    ]


def test_serve_help_explains_workers_and_their_rate_limits() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "maas", "serve", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert "--workers N|auto" in text
    assert "without it each worker counts on its own" in text
    assert "--worker " not in text  # the internal flag stays hidden


@pytest.mark.parametrize("value", ["0", "-1", "two"])
def test_serve_workers_must_be_a_count_or_auto(
    capsys: pytest.CaptureFixture[str], value: str
) -> None:
    code, _, err = run(capsys, "serve", "--workers", value)
    assert code == 2
    assert "or auto" in err


def test_serve_workers_refuse_a_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "maas", "serve", "--workers", "2", "--http-port", str(port)],
            env={**os.environ, "MAAS_HOME": str(tmp_path)},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.strip() == f"error: cannot listen on 127.0.0.1:{port}: the port is in use"


@pytest.mark.slow
def test_serve_workers_that_cannot_start_end_the_server_with_their_error(tmp_path: Path) -> None:
    register_classifier(tmp_path)
    command = [sys.executable, "-m", "maas", "serve", "--workers", "2", "--model", "nope"]
    result = subprocess.run(
        [*command, "--http-port", "0", "--grpc-port", "0"],
        env={**os.environ, "MAAS_HOME": str(tmp_path), "MAAS_LOG_LEVEL": "warning"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    assert "nope" in result.stderr
    assert "Traceback" not in result.stderr
    assert "maas serving" not in result.stdout
