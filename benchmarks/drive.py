"""Drive one running server with perf_analyzer over a list of runs and read its CPU use.

The same driver measures `maas serve` and the reference FastAPI app, so both sides see the same
load generator, input rows, windows and stability rule.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.models import BenchModel
from benchmarks.perf_analyzer import PerfResult, run_perf_analyzer
from benchmarks.server import ServerProcess

INPUT_ROWS = 8  # distinct input rows perf_analyzer cycles through

Served = dict[str, dict[str, dict[int, PerfResult]]]  # model -> protocol -> clients -> result


@dataclass(frozen=True)
class Run:
    """One measurement: a model, a protocol and a number of concurrent clients."""

    model: str
    protocol: str  # rest-json, rest-binary, grpc or grpc-stream
    clients: int


@dataclass(frozen=True)
class Driver:
    """How perf_analyzer is run: its command, the client core and the window."""

    command: list[str]
    cpu: int
    window_ms: int
    results: Path  # where CSVs and input files go


def plan(models: Iterable[str], protocols: Iterable[str], clients: Iterable[int]) -> list[Run]:
    """Every model with every protocol at every client count, in that order."""
    return [Run(m, p, c) for m in models for p in protocols for c in clients]


def measure(
    server: ServerProcess,
    models: dict[str, BenchModel],
    runs: Iterable[Run],
    driver: Driver,
    *,
    label: str,
    count_requests: bool = True,
) -> Served:
    """Measure each run against `server`.

    Each result gets the server CPU it used: `server_cpu_share`, CPU seconds per second of the
    run (the whole process tree), and, with `count_requests`, `server_cpu_us`, CPU time per
    request the server's statistics say it answered during the run.
    """
    served: Served = {}
    for run in runs:
        _say(f"{label}: {run.model} {run.protocol} concurrency {run.clients}")
        cpu_s, wall_s = server.cpu_s(), time.perf_counter()
        answered = server.success_count(run.model) if count_requests else 0
        try:
            result = _perf(server, models[run.model], run, driver, label)
        except RuntimeError as err:
            # One run that cannot be measured (a server this slow at these clients on a busy
            # machine) leaves a gap in the report rather than ending the whole benchmark.
            _say(f"  no measurement: {str(err)[-300:]}")
            continue
        cpu_used_s = server.cpu_s() - cpu_s
        result = dataclasses.replace(
            result, server_cpu_share=cpu_used_s / (time.perf_counter() - wall_s)
        )
        answered = server.success_count(run.model) - answered if count_requests else 0
        if answered > 0:
            result = dataclasses.replace(result, server_cpu_us=cpu_used_s / answered * 1e6)
        served.setdefault(run.model, {}).setdefault(run.protocol, {})[run.clients] = result
    return served


def _perf(
    server: ServerProcess, model: BenchModel, run: Run, driver: Driver, label: str
) -> PerfResult:
    if run.protocol.startswith("grpc"):
        transport = ["-i", "grpc", "-u", f"127.0.0.1:{server.grpc_port}"]
        if run.protocol == "grpc-stream":
            transport.append("--streaming")  # ModelStreamInfer, one stream per client
    else:
        tensor_format = "json" if run.protocol == "rest-json" else "binary"
        transport = [
            "-i", "http", "-u", f"127.0.0.1:{server.http_port}",
            "--input-tensor-format", tensor_format, "--output-tensor-format", tensor_format,
        ]  # fmt: skip
    common = [
        "-m", model.name, "-b", "1", "--concurrency-range", str(run.clients),
        "--max-threads", str(max(run.clients, 4)), "-p", str(driver.window_ms),
        "--input-data", str(_input_data(model, driver.results)),
    ]  # fmt: skip
    csv_path = driver.results / f"{label}-{model.name}-{run.protocol}-c{run.clients}.csv"
    csv_path.unlink(missing_ok=True)
    # Ten windows, plus filling and draining the clients' requests when answers take seconds.
    timeout_s = 20 * driver.window_ms / 1000 + 90
    try:
        return run_perf_analyzer(
            driver.command, [*transport, *common, "-s", "20", "-r", "8"], csv_path,
            cpu=driver.cpu, timeout_s=timeout_s,
        )  # fmt: skip
    except RuntimeError as err:
        # A shared machine can be too noisy for the 20 % stability rule; take the first three
        # windows in a row that all answered (any spread) and say so in the report.
        _say(f"  unstable, measuring once more without the stability rule: {str(err)[-200:]}")
        result = run_perf_analyzer(
            driver.command, [*transport, *common, "-s", "100000", "-r", "10"], csv_path,
            cpu=driver.cpu, timeout_s=timeout_s,
        )  # fmt: skip
        return dataclasses.replace(result, is_stable=False)


def _input_data(model: BenchModel, results: Path) -> Path:
    """A perf_analyzer input file of normal random rows (its own random data is random bits,
    NaN included, which JSON cannot carry)."""
    path = results / f"{model.name}-input.json"
    rng = np.random.default_rng(0)
    rows = rng.standard_normal((INPUT_ROWS, *model.row_shape)).astype(np.float32)
    doc = {"data": [{"input": [round(float(v), 6) for v in row.ravel()]} for row in rows]}
    path.write_text(json.dumps(doc))
    return path


def _say(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)
