"""Serve the quickstart model and query it three ways with NVIDIA's tritonclient.

Run by `make quickstart` after `maas train examples/digits-cnn.yaml`:
starts `maas serve` on free ports, sends one REST (JSON), one REST (binary) and one gRPC inference
with raw digits rows, prints the predicted digits, and stops the server cleanly.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from sklearn.datasets import load_digits

MODEL = os.environ.get("QUICKSTART_MODEL", "digits-cnn")
ROWS = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]  # one of each digit in scikit-learn's order
START_TIMEOUT_S = 60


def start_server() -> tuple[subprocess.Popen[str], str, str]:
    """Start `maas serve` on free ports; return the process and its REST and gRPC addresses."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "maas", "serve", "--model", MODEL]
    cmd += ["--http-port", "0", "--grpc-port", "0"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + START_TIMEOUT_S
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        print(f"  server: {line.rstrip()}")
        found = re.search(r"http://([\d.]+):(\d+) \(REST\) and ([\d.]+):(\d+) \(gRPC\)", line)
        if found:
            return proc, f"{found[1]}:{found[2]}", f"{found[3]}:{found[4]}"
    proc.kill()
    raise SystemExit("maas serve did not start; run `maas serve --model digits-cnn` to see why")


def infer_http(url: str, rows: np.ndarray, binary: bool) -> np.ndarray:
    client = httpclient.InferenceServerClient(url)
    assert client.is_server_ready()
    tensor = httpclient.InferInput("input", list(rows.shape), "FP32")
    tensor.set_data_from_numpy(rows, binary_data=binary)
    wanted = [httpclient.InferRequestedOutput("label", binary_data=binary)]
    result = client.infer(MODEL, [tensor], outputs=wanted)
    client.close()
    return result.as_numpy("label")


def infer_grpc(url: str, rows: np.ndarray) -> np.ndarray:
    client = grpcclient.InferenceServerClient(url)
    assert client.is_server_ready()
    tensor = grpcclient.InferInput("input", list(rows.shape), "FP32")
    tensor.set_data_from_numpy(rows)
    result = client.infer(MODEL, [tensor], outputs=[grpcclient.InferRequestedOutput("label")])
    client.close()
    return result.as_numpy("label")


def main() -> int:
    digits = load_digits()
    rows = digits.data[ROWS].astype(np.float32)
    truth = digits.target[ROWS]
    print(f"serving {MODEL} ...")
    proc, http_url, grpc_url = start_server()
    try:
        answers = {
            "REST (JSON)  ": infer_http(http_url, rows, binary=False),
            "REST (binary)": infer_http(http_url, rows, binary=True),
            "gRPC         ": infer_grpc(grpc_url, rows),
        }
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    print(f"true digits    {' '.join(str(d) for d in truth)}")
    for how, labels in answers.items():
        correct = int(np.sum(labels == truth))
        print(f"{how}  {' '.join(str(d) for d in labels)}   ({correct}/{len(truth)} right)")
    print(f"server stopped (exit code {code})")
    return 0 if code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
