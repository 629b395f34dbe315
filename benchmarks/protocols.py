"""Compare protocols on one served model in one run: throughput ratios, server CPU, batch sizes.

`make bench` measures everything once; this measures a few protocols side by side, alternating
them for a number of rounds, so a ratio (say unary gRPC against REST binary) is read within one
sitting on a machine whose load varies. The server runs pinned to core 0, perf_analyzer to core 1.

    python -m benchmarks.protocols --protocols rest-binary,grpc --concurrency 64 --rounds 2
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from benchmarks.drive import Driver, Run, measure
from benchmarks.models import BenchModel, cnn, mlp
from benchmarks.perf_analyzer import PerfResult, perf_analyzer_command
from benchmarks.run import CLIENT_CPU, PROTOCOLS, SERVER_CPU
from benchmarks.server import ServerProcess, register_models, start_server

MODELS = {"mlp": mlp, "cnn": cnn}


@dataclasses.dataclass(frozen=True)
class Row:
    """One protocol measured once: perf_analyzer's figures and the server's own counters."""

    protocol: str
    result: PerfResult
    server_cpu_us: float
    mean_batch: float


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=sorted(MODELS), default="mlp")
    parser.add_argument("--protocols", default="rest-binary,grpc")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--window-ms", type=int, default=1000, help="perf_analyzer window")
    parser.add_argument("--results", type=Path, default=Path("bench-results"))
    args = parser.parse_args(argv)
    protocols = args.protocols.split(",")
    unknown = set(protocols) - set(PROTOCOLS)
    if unknown:
        parser.error(f"unknown protocols {sorted(unknown)}; choose from {list(PROTOCOLS)}")
    args.results.mkdir(parents=True, exist_ok=True)
    command = perf_analyzer_command(args.results / "tools")
    model = MODELS[args.model]()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="maas-bench-") as tmp:
        register_models(Path(tmp), [model])
        server = start_server(
            Path(tmp), [model.name], cpu=SERVER_CPU, env={}, log_path=args.results / "serve.log"
        )
        try:
            for _ in range(args.rounds):
                for protocol in protocols:
                    rows.append(_measure(server, model, protocol, command, args))
                    _say(_line(rows[-1], rows))
        finally:
            server.stop()
    _say(f"server on core {SERVER_CPU}, perf_analyzer on core {CLIENT_CPU}, {model.name}, "
         f"batch 1, concurrency {args.concurrency}, {args.window_ms} ms windows")  # fmt: skip
    for row in rows:
        print(_line(row, rows))
    return 0


def _measure(
    server: ServerProcess,
    model: BenchModel,
    protocol: str,
    command: list[str],
    args: argparse.Namespace,
) -> Row:
    driver = Driver(command, CLIENT_CPU, args.window_ms, args.results)
    rows, batches = _batch_totals(server, model.name)
    run = Run(model.name, protocol, args.concurrency)
    served = measure(server, {model.name: model}, [run], driver, label="protocols")
    result = served[model.name][protocol][args.concurrency]
    rows_after, batches_after = _batch_totals(server, model.name)
    mean_batch = (rows_after - rows) / max(batches_after - batches, 1)
    return Row(protocol, result, result.server_cpu_us or 0.0, mean_batch)


def _batch_totals(server: ServerProcess, model: str) -> tuple[float, float]:
    """Rows and batches the model has run so far (the `maas_batch_size` histogram)."""
    with urllib.request.urlopen(server.http_url + "/metrics", timeout=5) as answer:  # noqa: S310  # our own loopback server
        text = answer.read().decode()
    total = {"maas_batch_size_sum": 0.0, "maas_batch_size_count": 0.0}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in total and sample.labels.get("model") == model:
                total[sample.name] += sample.value
    return total["maas_batch_size_sum"], total["maas_batch_size_count"]


def _line(row: Row, rows: list[Row]) -> str:
    # The ratio is against the latest measurement of the first protocol, so far.
    first = [r for r in rows if r.protocol == rows[0].protocol and rows.index(r) <= rows.index(row)]
    ratio = row.result.throughput / first[-1].result.throughput
    return (
        f"{row.protocol:12} {row.result.throughput:8.0f} infer/s  ratio {ratio:4.2f}  "
        f"server CPU {row.server_cpu_us:5.0f} µs/request  mean batch {row.mean_batch:5.1f}  "
        f"p50 {row.result.p50_ms:5.2f} ms  p99 {row.result.p99_ms:5.2f} ms"
    )


def _say(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
