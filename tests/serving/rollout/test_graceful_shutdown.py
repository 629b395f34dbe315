"""SIGTERM under load: `maas serve` stops accepting, answers every request it had accepted, and
exits 0."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx_models import OPSET

from maas.registry.store import Registry
from maas.signature import Signature, TensorSpec

REQUESTS = 8
LOOP_STEPS = 600  # ~0.1 s per request on one core: a queue of 8 outlasts the signal
WIDTH = 1024
SIGNATURE = Signature(
    inputs=(TensorSpec("x", "FP32", (-1, 4)),), outputs=(TensorSpec("y", "FP32", (-1, 4)),)
)


def build_slow_model() -> bytes:
    """`y = x`, computed after LOOP_STEPS products of a WIDTH x WIDTH matrix (kept, times 0)."""
    rng = np.random.default_rng(0)
    body = helper.make_graph(
        [
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
            helper.make_node("MatMul", ["s_in", "W"], ["m"]),
            helper.make_node("Tanh", ["m"], ["s_out"]),
        ],
        "step",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("s_in", TensorProto.FLOAT, ["batch", WIDTH]),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("s_out", TensorProto.FLOAT, ["batch", WIDTH]),
        ],
    )
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "P"], ["s0"]),
            helper.make_node("Loop", ["steps", "always", "s0"], ["s_end"], body=body),
            helper.make_node("ReduceSum", ["s_end", "axes"], ["total"], keepdims=1),
            helper.make_node("Mul", ["total", "zero"], ["nothing"]),
            helper.make_node("Add", ["x", "nothing"], ["y"]),
        ],
        "slow_identity",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
        initializer=[
            numpy_helper.from_array(rng.normal(size=(4, WIDTH)).astype(np.float32), "P"),
            numpy_helper.from_array(
                (rng.normal(size=(WIDTH, WIDTH)) / WIDTH).astype(np.float32), "W"
            ),
            numpy_helper.from_array(np.array(LOOP_STEPS, dtype=np.int64), "steps"),
            numpy_helper.from_array(np.array(True), "always"),
            numpy_helper.from_array(np.array([1], dtype=np.int64), "axes"),
            numpy_helper.from_array(np.array(0.0, dtype=np.float32), "zero"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    data: bytes = model.SerializeToString()
    return data


def _address(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    line = process.stdout.readline()
    found = re.search(r"http://127\.0\.0\.1:(\d+)", line)
    assert found, f"no address in {line!r}"
    return f"http://127.0.0.1:{found.group(1)}"


def _load_and_terminate(process: subprocess.Popen[str], url: str) -> list[object]:
    """Send REQUESTS requests at once; SIGTERM once the server holds them all; their answers."""
    answers: list[object] = []
    row = [1, 2, 3, 4]
    body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": row}]}

    def one_request() -> None:
        try:
            response = httpx.post(f"{url}/v2/models/slow/infer", json=body, timeout=120)
            answers.append((response.status_code, response.json()["outputs"][0]["data"]))
        except httpx.HTTPError as err:
            answers.append(err)

    threads = [threading.Thread(target=one_request) for _ in range(REQUESTS)]
    for thread in threads:
        thread.start()
    for _ in range(3000):  # until every request is in: one computing, the rest queued (or done)
        depth = _queue_depth(url)
        if len(answers) == REQUESTS or (depth >= 1 and depth + 1 + len(answers) >= REQUESTS):
            break
    process.send_signal(signal.SIGTERM)
    for thread in threads:
        thread.join(120)
    return answers


def _queue_depth(url: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    found = re.search(r'^maas_queue_depth\{model="slow",version="1"\} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


@pytest.mark.slow
def test_sigterm_answers_every_accepted_request_then_exits_0(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with Registry(f"sqlite:///{home / 'registry.db'}", home / "artifacts") as registry:
        registry.register("slow", build_slow_model(), signature=SIGNATURE)
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("MAAS_")}
    env = {**inherited, "MAAS_HOME": str(home), "MAAS_SERVE_MAX_BATCH_SIZE": "1"}
    command = [sys.executable, "-m", "maas", "serve", "--http-port", "0", "--grpc-port", "0"]
    command += ["--poll-interval", "0", "--grace-period", "60"]
    with subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    ) as process:
        try:
            url = _address(process)
            answers = _load_and_terminate(process, url)
            assert process.wait(120) == 0
        finally:
            if process.poll() is None:
                process.kill()
    assert answers == [(200, [1.0, 2.0, 3.0, 4.0])] * REQUESTS
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/v2/health/live", timeout=5)
