"""`make bench`: in-process onnxruntime vs `maas serve` over REST JSON, REST binary and gRPC.

Steps: build the MLP and CNN (onnx.helper, fixed seeds); measure in-process onnxruntime on one
thread pinned to core 0 at every batch size; register both models in a temporary registry; start
`maas serve` pinned to core 0 (measuring start-up to ready and idle memory); drive it with
perf_analyzer pinned to core 1 at each concurrency; write docs/benchmarks.md and
bench-results/results.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.inprocess import InProcessResult, sweep
from benchmarks.models import BenchModel, cnn, mlp
from benchmarks.perf_analyzer import (
    PerfResult,
    describe_runner,
    perf_analyzer_command,
    run_perf_analyzer,
)
from benchmarks.report import Measurements, write_report
from benchmarks.server import ServerProcess, register_models, start_server

SERVER_CPU = 0
CLIENT_CPU = 1
BATCHES = (1, 2, 4, 8, 16, 32, 64)
PROTOCOLS = ("rest-json", "rest-binary", "grpc", "grpc-stream")
CONCURRENCIES = (1, 8, 64)
INPUT_ROWS = 8  # distinct input rows perf_analyzer cycles through
IDLE_WAIT_S = 2.0  # let start-up garbage settle before reading idle memory


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks.md"))
    parser.add_argument("--results", type=Path, default=Path("bench-results"))
    parser.add_argument("--window-ms", type=int, default=2000, help="perf_analyzer window")
    parser.add_argument("--inprocess-s", type=float, default=1.0, help="seconds per batch size")
    parser.add_argument("--concurrency", default=",".join(map(str, CONCURRENCIES)))
    args = parser.parse_args(argv)
    args.results.mkdir(parents=True, exist_ok=True)
    concurrencies = tuple(int(c) for c in args.concurrency.split(","))
    started = time.perf_counter()

    load_before = os.getloadavg()
    models = (mlp(), cnn())
    _say("in-process onnxruntime, 1 thread, core 0")
    inprocess = _measure_inprocess(models, args.inprocess_s)
    _say("fetching perf_analyzer (cached after the first run)")
    try:
        command = perf_analyzer_command(args.results / "tools")
    except (RuntimeError, OSError, StopIteration) as err:
        _say(f"perf_analyzer is not available, so nothing was served or measured: {err}")
        return 1

    with tempfile.TemporaryDirectory(prefix="maas-bench-") as tmp:
        home = Path(tmp)
        register_models(home, models)
        _say("starting maas serve on core 0")
        server = start_server(
            home,
            [m.name for m in models],
            cpu=SERVER_CPU,
            env={},
            log_path=args.results / "serve.log",
        )
        try:
            time.sleep(IDLE_WAIT_S)
            idle_rss_mb = server.rss_mb()
            configs = {m.name: server.get_json(f"/v2/models/{m.name}/config") for m in models}
            served = _measure_served(server, models, concurrencies, command, args)
        finally:
            server.stop()

    measurements = Measurements(
        inprocess=inprocess,
        served=served,
        configs=configs,
        startup_s=server.startup_s,
        idle_rss_mb=idle_rss_mb,
        runner=describe_runner(command),
        command="make bench  # = .venv/bin/python -m benchmarks.run",
        duration_s=time.perf_counter() - started,
        load_average=(load_before[0], os.getloadavg()[0]),
    )
    write_report(measurements, args.out)
    (args.results / "results.json").write_text(json.dumps(_jsonable(measurements), indent=2))
    _say(f"wrote {args.out} and {args.results / 'results.json'}")
    return 0


def _measure_inprocess(
    models: tuple[BenchModel, ...], duration_s: float
) -> dict[str, dict[int, InProcessResult]]:
    affinity = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {SERVER_CPU})
    try:
        return {m.name: sweep(m, BATCHES, duration_s) for m in models}
    finally:
        os.sched_setaffinity(0, affinity)


def _measure_served(
    server: ServerProcess,
    models: tuple[BenchModel, ...],
    concurrencies: tuple[int, ...],
    command: list[str],
    args: argparse.Namespace,
) -> dict[str, dict[str, dict[int, PerfResult]]]:
    served: dict[str, dict[str, dict[int, PerfResult]]] = {}
    for model in models:
        for protocol in PROTOCOLS:
            for concurrency in concurrencies:
                _say(f"{model.name} {protocol} concurrency {concurrency}")
                cpu_s, requests = server.cpu_s(), server.success_count(model.name)
                result = measure(server, model, protocol, concurrency, command, args)
                answered = server.success_count(model.name) - requests
                if answered > 0:
                    cpu_us = (server.cpu_s() - cpu_s) / answered * 1e6
                    result = dataclasses.replace(result, server_cpu_us=cpu_us)
                served.setdefault(model.name, {}).setdefault(protocol, {})[concurrency] = result
    return served


def measure(
    server: ServerProcess,
    model: BenchModel,
    protocol: str,
    concurrency: int,
    command: list[str],
    args: argparse.Namespace,
) -> PerfResult:
    """One perf_analyzer measurement of `model` over `protocol` (batch-1 requests)."""
    if protocol.startswith("grpc"):
        transport = ["-i", "grpc", "-u", f"127.0.0.1:{server.grpc_port}"]
        if protocol == "grpc-stream":
            transport.append("--streaming")  # ModelStreamInfer, one stream per client
    else:
        tensor_format = "json" if protocol == "rest-json" else "binary"
        transport = [
            "-i", "http", "-u", f"127.0.0.1:{server.http_port}",
            "--input-tensor-format", tensor_format, "--output-tensor-format", tensor_format,
        ]  # fmt: skip
    common = [
        "-m", model.name, "-b", "1", "--concurrency-range", str(concurrency),
        "--max-threads", str(max(concurrency, 4)), "-p", str(args.window_ms),
        "--input-data", str(_input_data(model, args.results)),
    ]  # fmt: skip
    csv_path = args.results / f"{model.name}-{protocol}-c{concurrency}.csv"
    csv_path.unlink(missing_ok=True)
    timeout_s = 20 * args.window_ms / 1000 + 30
    try:
        return run_perf_analyzer(
            command, [*transport, *common, "-s", "20", "-r", "8"], csv_path,
            cpu=CLIENT_CPU, timeout_s=timeout_s,
        )  # fmt: skip
    except RuntimeError as err:
        # A shared machine can be too noisy for the 20 % stability rule; take the measurement
        # as it comes and say so in the report.
        _say(f"  unstable, measuring once more without the stability rule: {str(err)[-200:]}")
        result = run_perf_analyzer(
            command, [*transport, *common, "-s", "1000", "-r", "3"], csv_path,
            cpu=CLIENT_CPU, timeout_s=timeout_s,
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


def _jsonable(measurements: Measurements) -> dict[str, Any]:
    return dataclasses.asdict(measurements)


def _say(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
