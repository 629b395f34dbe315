"""Register the benchmark models in a fresh registry and run `maas serve` (or the reference
FastAPI app) pinned to one core."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from benchmarks.models import BenchModel
from maas.config import load_settings
from maas.registry.store import Registry
from maas.signature import read_onnx_signature

READY_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class ServerProcess:
    """A running server: its process, ports and how long it took to become ready."""

    process: subprocess.Popen[bytes]
    http_port: int
    grpc_port: int | None  # None: REST only (the reference app)
    startup_s: float

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def rss_mb(self) -> float:
        """Resident memory (VmRSS) of the server's processes (all workers), in MiB."""
        total_kb = 0
        for pid in self.pids():
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
        return total_kb / 1024

    def cpu_s(self) -> float:
        """CPU seconds the server's processes have used so far (user + system, all threads)."""
        total = 0
        for pid in self.pids():
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        return total / os.sysconf("SC_CLK_TCK")

    def pids(self) -> list[int]:
        """The server process and its children (the workers of `maas serve --workers N`)."""
        found, pending = [], [self.process.pid]
        while pending:
            pid = pending.pop()
            found.append(pid)
            children = Path(f"/proc/{pid}/task/{pid}/children")
            if children.exists():
                pending += [int(child) for child in children.read_text().split()]
        return found

    def success_count(self, model: str) -> int:
        """Requests the model has answered successfully, over all workers (from `/metrics`;
        a server without it, the reference, from its Triton statistics)."""
        try:
            with urllib.request.urlopen(self.http_url + "/metrics", timeout=5) as answer:  # noqa: S310  # our own loopback server
                text = answer.read().decode()
        except urllib.error.HTTPError as err:
            if err.code != 404:
                raise
            stats = self.get_json(f"/v2/models/{model}/stats")
            return sum(int(m["inference_stats"]["success"]["count"]) for m in stats["model_stats"])
        return int(
            sum(
                sample.value
                for family in text_string_to_metric_families(text)
                for sample in family.samples
                if sample.name == "maas_requests_total"
                and sample.labels.get("model") == model
                and sample.labels.get("code") == "ok"
            )
        )

    def get_json(self, path: str) -> Any:
        with urllib.request.urlopen(self.http_url + path, timeout=5) as answer:  # noqa: S310  # our own loopback server
            return json.load(answer)

    def stop(self) -> None:
        """SIGINT, then wait (SIGKILL after 15 s)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def register_models(home: Path, models: Iterable[BenchModel]) -> None:
    """Register each model as version 1 in the registry under `home`."""
    with Registry.from_settings(load_settings(home=home)) as registry:
        for model in models:
            signature = read_onnx_signature(model.onnx_bytes)
            registry.register(
                model.name, model.onnx_bytes, signature=signature, labels=model.labels
            )


def start_server(
    home: Path,
    models: Iterable[str],
    *,
    cpu: int | None,
    env: dict[str, str],
    log_path: Path,
    workers: int = 1,
) -> ServerProcess:
    """Start `maas serve` on free loopback ports and wait until every model is ready;
    `workers` > 1 passes `--workers` on.

    Raises:
        RuntimeError: the server exited or was not ready within READY_TIMEOUT_S.
    """
    http_port, grpc_port = _free_port(), _free_port()
    full_env = {
        **os.environ,
        **env,
        "MAAS_HOME": str(home),
        "MAAS_SERVE_HOST": "127.0.0.1",
        "MAAS_SERVE_HTTP_PORT": str(http_port),
        "MAAS_SERVE_GRPC_PORT": str(grpc_port),
        "MAAS_LOG_LEVEL": "warning",
    }
    command = [sys.executable, "-m", "maas", "serve"]
    if workers > 1:
        command += ["--workers", str(workers)]
    return _start(command, full_env, models, cpu, http_port, grpc_port, log_path)


def start_reference(
    models_dir: Path, models: Iterable[str], *, cpu: int | None, log_path: Path
) -> ServerProcess:
    """Start the reference FastAPI app (benchmarks/reference_app.py) on every
    `models_dir/<name>.onnx` and wait until it is ready.

    Raises:
        RuntimeError: the app exited or was not ready within READY_TIMEOUT_S.
    """
    port = _free_port()
    command = [sys.executable, "-m", "benchmarks.reference_app"]
    command += ["--models", str(models_dir), "--port", str(port)]
    return _start(command, {**os.environ}, models, cpu, port, None, log_path)


def serve_has_workers_option() -> bool:
    """Whether this `maas serve` takes `--workers`."""
    done = subprocess.run(
        [sys.executable, "-m", "maas", "serve", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.returncode == 0 and "--workers" in done.stdout


def _start(
    command: list[str],
    env: dict[str, str],
    models: Iterable[str],
    cpu: int | None,
    http_port: int,
    grpc_port: int | None,
    log_path: Path,
) -> ServerProcess:
    prefix = ["taskset", "-c", str(cpu)] if cpu is not None else []
    with log_path.open("wb") as log:
        start = time.perf_counter()
        process = subprocess.Popen(
            [*prefix, *command], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    paths = ["/v2/health/ready", *(f"/v2/models/{m}/ready" for m in models)]
    url = f"http://127.0.0.1:{http_port}"
    while not all(_is_ok(url + path) for path in paths):
        if process.poll() is not None:
            raise RuntimeError(f"{command[2]} exited with {process.returncode}; see {log_path}")
        if time.perf_counter() - start > READY_TIMEOUT_S:
            process.kill()
            raise RuntimeError(
                f"{command[2]} was not ready after {READY_TIMEOUT_S} s; see {log_path}"
            )
        time.sleep(0.01)
    return ServerProcess(process, http_port, grpc_port, time.perf_counter() - start)


def _is_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as answer:  # noqa: S310  # our own loopback server
            return bool(answer.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
