"""`make bench`: in-process onnxruntime vs `maas serve` vs a hand-written FastAPI server.

Steps: build the MLP and CNN (onnx.helper, fixed seeds); measure in-process onnxruntime on one
thread pinned to core 0 at every batch size; register both models in a temporary registry; start
`maas serve` pinned to core 0 (measuring start-up to ready and idle memory) and drive it with
perf_analyzer pinned to core 1 over REST JSON, REST binary, gRPC and gRPC streaming at each
concurrency; then the reference FastAPI + uvicorn app (benchmarks/reference_app.py) on the same
core with the same driver over REST; then, when `maas serve` has `--workers`, `maas serve
--workers N` on a few runs; write docs/benchmarks.md and bench-results/results.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.drive import Driver, Run, Served, measure, plan
from benchmarks.inprocess import InProcessResult, sweep
from benchmarks.models import BenchModel, cnn, mlp
from benchmarks.perf_analyzer import describe_runner, perf_analyzer_command
from benchmarks.reference_app import describe_reference
from benchmarks.report import Measurements, write_report
from benchmarks.report_compare import Workers
from benchmarks.server import (
    register_models,
    serve_has_workers_option,
    start_reference,
    start_server,
)

SERVER_CPU = 0
CLIENT_CPU = 1
BATCHES = (1, 2, 4, 8, 16, 32, 64)
PROTOCOLS = ("rest-json", "rest-binary", "grpc", "grpc-stream")
REFERENCE_RUNS = (("mlp", "rest-json"), ("mlp", "rest-binary"), ("cnn", "rest-json"))
WORKERS_RUNS = (("mlp", "rest-json"), ("mlp", "rest-binary"), ("mlp", "grpc"))
CONCURRENCIES = (1, 8, 64)
IDLE_WAIT_S = 2.0  # let start-up garbage settle before reading idle memory


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    args.results.mkdir(parents=True, exist_ok=True)
    concurrencies = tuple(int(c) for c in args.concurrency.split(","))
    started = time.perf_counter()

    load_before = os.getloadavg()
    models = tuple(m for m in (mlp(), cnn()) if m.name in args.models.split(","))
    _say("in-process onnxruntime, 1 thread, core 0")
    inprocess = _measure_inprocess(models, args.inprocess_s)
    _say("fetching perf_analyzer (cached after the first run)")
    try:
        command = perf_analyzer_command(args.results / "tools")
    except (RuntimeError, OSError, StopIteration) as err:
        _say(f"perf_analyzer is not available, so nothing was served or measured: {err}")
        return 1
    driver = Driver(command, CLIENT_CPU, args.window_ms, args.results)
    by_name = {m.name: m for m in models}

    with tempfile.TemporaryDirectory(prefix="maas-bench-") as tmp:
        home = Path(tmp)
        _prepare(home, models)
        maas = _measure_maas(home, by_name, concurrencies, driver, args)
        reference = _measure_reference(home / "onnx", by_name, concurrencies, driver, args)
        workers = _measure_workers(home, by_name, concurrencies, driver, args)

    measurements = Measurements(
        inprocess=inprocess,
        served=maas.served,
        configs=maas.configs,
        startup_s=maas.startup_s,
        idle_rss_mb=maas.idle_rss_mb,
        runner=describe_runner(command),
        command="make bench  # = .venv/bin/python -m benchmarks.run",
        duration_s=time.perf_counter() - started,
        load_average=(load_before[0], os.getloadavg()[0]),
        reference_served=reference,
        reference_server=describe_reference(),
        workers=workers,
    )
    write_report(measurements, args.out)
    (args.results / "results.json").write_text(json.dumps(_jsonable(measurements), indent=2))
    _say(f"wrote {args.out} and {args.results / 'results.json'}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks.md"))
    parser.add_argument("--results", type=Path, default=Path("bench-results"))
    parser.add_argument("--window-ms", type=int, default=2000, help="perf_analyzer window")
    parser.add_argument("--inprocess-s", type=float, default=1.0, help="seconds per batch size")
    parser.add_argument("--concurrency", default=",".join(map(str, CONCURRENCIES)))
    parser.add_argument("--models", default="mlp,cnn", help="comma-separated: mlp, cnn")
    parser.add_argument(
        "--workers",
        type=int,
        default=2,
        help="also measure `maas serve --workers N` on a few runs (1: skip)",
    )
    return parser


def _measure_inprocess(
    models: tuple[BenchModel, ...], duration_s: float
) -> dict[str, dict[int, InProcessResult]]:
    affinity = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {SERVER_CPU})
    try:
        return {m.name: sweep(m, BATCHES, duration_s) for m in models}
    finally:
        os.sched_setaffinity(0, affinity)


@dataclass(frozen=True)
class MaasRun:
    """What one `maas serve` (one worker) measured."""

    served: Served
    configs: dict[str, dict[str, Any]]
    startup_s: float
    idle_rss_mb: float


def _prepare(home: Path, models: tuple[BenchModel, ...]) -> None:
    """Register the models in a registry under `home` and write them to `home/onnx` for the
    reference app."""
    register_models(home, models)
    (home / "onnx").mkdir()
    for model in models:
        (home / "onnx" / f"{model.name}.onnx").write_bytes(model.onnx_bytes)


def _measure_maas(
    home: Path,
    models: dict[str, BenchModel],
    concurrencies: tuple[int, ...],
    driver: Driver,
    args: argparse.Namespace,
) -> MaasRun:
    """Start-up, idle memory and every protocol at every concurrency."""
    _say("starting maas serve on core 0")
    server = start_server(home, models, cpu=SERVER_CPU, env={}, log_path=args.results / "serve.log")
    try:
        time.sleep(IDLE_WAIT_S)
        idle_rss_mb = server.rss_mb()
        configs = {m: server.get_json(f"/v2/models/{m}/config") for m in models}
        runs = plan(models, PROTOCOLS, concurrencies)
        served = measure(server, models, runs, driver, label="maas")
    finally:
        server.stop()
    return MaasRun(served, configs, server.startup_s, idle_rss_mb)


def _measure_reference(
    onnx_dir: Path,
    models: dict[str, BenchModel],
    concurrencies: tuple[int, ...],
    driver: Driver,
    args: argparse.Namespace,
) -> Served:
    """The same driver against the hand-written FastAPI app on the same core."""
    _say("starting the reference FastAPI app on core 0")
    log_path = args.results / "reference.log"
    server = start_reference(onnx_dir, models, cpu=SERVER_CPU, log_path=log_path)
    runs = [Run(m, p, c) for m, p in REFERENCE_RUNS if m in models for c in concurrencies]
    try:
        return measure(server, models, runs, driver, label="reference")
    finally:
        server.stop()


def _measure_workers(
    home: Path,
    models: dict[str, BenchModel],
    concurrencies: tuple[int, ...],
    driver: Driver,
    args: argparse.Namespace,
) -> Workers:
    """`maas serve --workers N` on WORKERS_RUNS at the most clients, on the same core."""
    if args.workers <= 1:
        return Workers(args.workers, {}, "not measured: run with `--workers 2` to fill it in.")
    if not serve_has_workers_option():
        _say("maas serve has no --workers option yet: skipping the workers runs")
        note = "not measured: this `maas serve` has no `--workers` option yet."
        return Workers(args.workers, {}, note)
    _say(f"starting maas serve --workers {args.workers} on core 0")
    log_path = args.results / "serve-workers.log"
    server = start_server(
        home, models, cpu=SERVER_CPU, env={}, log_path=log_path, workers=args.workers
    )
    clients = max(concurrencies)
    runs = [Run(m, p, clients) for m, p in WORKERS_RUNS if m in models]
    try:
        # Each worker keeps its own statistics, so CPU per request comes from the CPU share
        # and the measured throughput instead of the answered count.
        served = measure(server, models, runs, driver, label="workers", count_requests=False)
    finally:
        server.stop()
    return Workers(args.workers, served, None)


def _jsonable(measurements: Measurements) -> dict[str, Any]:
    return dataclasses.asdict(measurements)


def _say(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
