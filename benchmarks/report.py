"""The benchmark report: docs/benchmarks.md with tables, goals and how they were measured."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import onnxruntime

from benchmarks.inprocess import InProcessResult
from benchmarks.perf_analyzer import PerfResult
from benchmarks.report_compare import Workers, reference_section, workers_section

GOAL_RATIO = {  # share of the in-process reference that 64 clients must reach
    ("mlp", "rest-json"): 0.5,
    ("mlp", "rest-binary"): 0.7,
    ("mlp", "grpc"): 0.7,
    ("mlp", "grpc-stream"): 0.7,
    ("cnn", "rest-binary"): 0.8,
    ("cnn", "grpc"): 0.8,
    ("cnn", "grpc-stream"): 0.8,
}
ADDED_LATENCY_MS = 0.5  # at one client, p50 over in-process batch-1 latency
P99_FACTOR = 2.0  # at 8 clients, p99 <= 2 x (max queue delay + one batch's compute)
IDLE_RSS_MB = 250.0
STARTUP_S = 2.0


@dataclass(frozen=True)
class Measurements:
    """Everything one benchmark run measured."""

    inprocess: dict[str, dict[int, InProcessResult]]
    served: dict[str, dict[str, dict[int, PerfResult]]]
    configs: dict[str, dict[str, Any]]
    startup_s: float
    idle_rss_mb: float
    runner: str
    command: str
    duration_s: float
    load_average: tuple[float, float]  # 1-minute load average before and after the run
    reference_served: dict[str, dict[str, dict[int, PerfResult]]]  # the FastAPI app, same layout
    reference_server: str  # its frameworks and versions
    workers: Workers

    def reference(self, model: str) -> InProcessResult:
        """What served throughput is compared with: batch 1 for the MLP, the best batch for
        the CNN (as the goals say)."""
        results = self.inprocess[model]
        if model == "mlp":
            return results[1]
        return max(results.values(), key=lambda r: r.rows_per_s)


def write_report(m: Measurements, path: Path) -> None:
    """Write the markdown report to `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        "# Serving benchmarks",
        "",
        "How fast `maas serve` answers compared with calling onnxruntime in-process, over REST",
        "JSON, REST with the binary tensor extension, gRPC `ModelInfer` (one call per request)",
        "and gRPC `ModelStreamInfer` (perf_analyzer `--streaming`: one stream per client), and",
        "compared with a hand-written FastAPI server measured in the same run on the same core.",
        "Made by:",
        "",
        "```",
        m.command,
        "```",
        "",
        *_setup(m),
        "",
        "## In-process onnxruntime (1 thread, core 0)",
        "",
        *_inprocess_table(m),
        "",
        "## Served (`maas serve` on core 0, perf_analyzer on core 1, batch-1 requests)",
        "",
        "Throughput is inferences per second; latencies are perf_analyzer's client-side",
        "milliseconds. The ratio compares throughput with the in-process reference: batch 1",
        "for the MLP, the best batch size for the CNN.",
        "",
        *_served_table(m),
        "",
        "## Goals",
        "",
        *_goals_table(m),
        "",
        *reference_section(m.served, m.reference_served, m.reference_server),
        *workers_section(m.served, m.workers),
        *_overhead(m),
        *_notes(m),
        *_kept_notes(),
    ]
    path.write_text("\n".join(lines) + "\n")


KEPT_NOTES = Path(__file__).with_name("kept_notes.md")  # hand-written measurements, kept as is


def _kept_notes() -> list[str]:
    """Measurements made by hand (their commands are in the text), appended to every report."""
    if not KEPT_NOTES.exists():
        return []
    return ["", *KEPT_NOTES.read_text().rstrip("\n").split("\n")]


def _setup(m: Measurements) -> list[str]:
    batching = []
    for name, config in sorted(m.configs.items()):
        dyn = config.get("dynamic_batching", {})
        batching.append(
            f"{name}: max_batch_size {config.get('max_batch_size')}, max_queue_delay "
            f"{dyn.get('max_queue_delay_microseconds')} µs"
        )
    return [
        f"- Taken {datetime.now(UTC):%Y-%m-%d %H:%M} UTC in {m.duration_s:.0f} s on "
        f"{_cpu_model()} ({os.cpu_count()} cores), Python {platform.python_version()}, "
        f"onnxruntime {onnxruntime.__version__}, grpcio {grpc.__version__}. Load average "
        f"(1 min) {m.load_average[0]:.1f} before and {m.load_average[1]:.1f} after the run.",
        f"- Load generator: {m.runner}.",
        "- Models (onnx.helper, fixed seeds, FP32): MLP 784-512-512-10; CNN on 1x64x64,",
        "  conv 32 - pool - conv 64 - pool - dense 128 - 10. Both have a dynamic batch dimension.",
        f"- Serving policy (defaults of `maas serve`): {'; '.join(batching)}.",
        f"- Start-up to ready (both models loaded): {m.startup_s:.2f} s. Idle RSS with both "
        f"models loaded: {m.idle_rss_mb:.0f} MiB.",
    ]


def _inprocess_table(m: Measurements) -> list[str]:
    rows = ["| model | batch | rows/s | ms per call |", "| --- | ---: | ---: | ---: |"]
    for name, results in m.inprocess.items():
        best = m.reference(name).batch if name == "cnn" else None
        for batch, r in results.items():
            mark = " (best)" if batch == best else ""
            rows.append(f"| {name} | {batch}{mark} | {r.rows_per_s:,.0f} | {r.batch_ms:.3f} |")
    return rows


def _served_table(m: Measurements) -> list[str]:
    rows = [
        "| model | protocol | clients | infer/s | p50 ms | p99 ms | ratio | server CPU µs/req "
        "| CPU ceiling infer/s |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, protocols in m.served.items():
        reference = m.reference(name).rows_per_s
        for protocol, results in protocols.items():
            for clients, r in results.items():
                flag = "" if r.is_stable else " *"
                cpu = ceiling = ""
                if r.server_cpu_us:
                    cpu, ceiling = f"{r.server_cpu_us:,.0f}", f"{1e6 / r.server_cpu_us:,.0f}"
                rows.append(
                    f"| {name} | {protocol} | {clients} | {r.throughput:,.0f}{flag} | "
                    f"{r.p50_ms:.2f} | {r.p99_ms:.2f} | {r.throughput / reference:.2f} | {cpu} "
                    f"| {ceiling} |"
                )
    if any(not r.is_stable for p in m.served.values() for s in p.values() for r in s.values()):
        rows += ["", "\\* perf_analyzer found no stable window (±20 %); the value is one window."]
    return rows


def _goals_table(m: Measurements) -> list[str]:
    rows = ["| goal | target | measured | met |", "| --- | --- | --- | --- |"]
    for (name, protocol), share in GOAL_RATIO.items():
        r = m.served.get(name, {}).get(protocol, {}).get(64)
        if r is None:
            continue
        ref = m.reference(name)
        ratio = r.throughput / ref.rows_per_s
        what = "batch 1" if name == "mlp" else f"best batch ({ref.batch})"
        rows.append(
            f"| {name} {protocol}, 64 clients vs in-process {what} | >= {share:.0%} | "
            f"{ratio:.0%} ({r.throughput:,.0f} vs {ref.rows_per_s:,.0f}/s) | "
            f"{_yes(ratio >= share)} |"
        )
    rows += _p99_goals(m) + _latency_goals(m)
    rows.append(
        f"| idle RSS, both models loaded | < {IDLE_RSS_MB:.0f} MiB | {m.idle_rss_mb:.0f} MiB | "
        f"{_yes(m.idle_rss_mb < IDLE_RSS_MB)} |"
    )
    rows.append(
        f"| start-up to ready | < {STARTUP_S:.0f} s | {m.startup_s:.2f} s | "
        f"{_yes(m.startup_s < STARTUP_S)} |"
    )
    return rows


def _p99_goals(m: Measurements) -> list[str]:
    rows = []
    for name, protocols in m.served.items():
        config = m.configs[name]
        delay_ms = config["dynamic_batching"]["max_queue_delay_microseconds"] / 1000
        batch = min(8, int(config["max_batch_size"]))
        compute_ms = m.inprocess[name][batch].batch_ms
        bound = P99_FACTOR * (delay_ms + compute_ms)
        for protocol, results in protocols.items():
            r = results.get(8)
            if r is None:
                continue
            rows.append(
                f"| {name} {protocol}, p99 at 8 clients | "
                f"<= 2 x ({delay_ms:.2f} + {compute_ms:.2f}) = {bound:.2f} ms | "
                f"{r.p99_ms:.2f} ms | {_yes(r.p99_ms <= bound)} |"
            )
    return rows


def _latency_goals(m: Measurements) -> list[str]:
    rows = []
    for name, protocols in m.served.items():
        base_ms = m.inprocess[name][1].batch_ms
        for protocol, results in protocols.items():
            r = results.get(1)
            if r is None:
                continue
            added = r.p50_ms - base_ms
            rows.append(
                f"| {name} {protocol}, 1 client: p50 over in-process batch 1 ({base_ms:.2f} ms) | "
                f"< {ADDED_LATENCY_MS} ms | {added:.2f} ms | {_yes(added < ADDED_LATENCY_MS)} |"
            )
    return rows


def _overhead(m: Measurements) -> list[str]:
    """Per-request server CPU beyond the model's own compute, at 8 clients (from the CPU
    column and the in-process cost of one row in a batch of 8)."""
    lines = []
    for name, protocols in m.served.items():
        row_us = m.inprocess[name][8].batch_ms * 1000 / 8
        parts = []
        for protocol, results in protocols.items():
            r = results.get(8)
            if r is not None and r.server_cpu_us is not None:
                parts.append(f"{protocol} {r.server_cpu_us - row_us:,.0f} µs")
        if parts:
            lines.append(
                f"- {name}: one row costs {row_us:,.0f} µs of compute in a batch of 8; "
                f"the server spends beyond that per request: {', '.join(parts)}."
            )
    if not lines:
        return []
    return [
        "## Where the time goes",
        "",
        "Server CPU per request at 8 clients, less the model's compute for one row:",
        "",
        *lines,
        "",
        "That remainder is the transport (HTTP parsing or gRPC's C core and its asyncio",
        "bridge), decoding, validation, batching hand-offs and encoding; on one core it, not",
        "the model, sets the ceiling for small models.",
        "",
    ]


def _notes(m: Measurements) -> list[str]:
    return [
        "## How to read this",
        "",
        "- One core serves (`taskset -c 0`) and the other drives the load (`taskset -c 1`): the",
        "  server's event loop, decoding, batching and onnxruntime all share one core, so",
        "  per-request Python work competes with model compute.",
        "- Server CPU µs/req is the CPU time of the server's process tree (all threads, psutil)",
        "  over the requests it answered during that run. The CPU ceiling, 1e6 divided by it, is",
        "  the throughput the server would reach with core 0 to itself; it is steadier than the",
        "  measured rate when other work shares the machine.",
        "- The reference FastAPI server runs after `maas serve`, on the same core with the same",
        "  perf_analyzer settings; only one server runs at a time.",
        "- perf_analyzer reads its inputs from a file of normal random rows: its own random data",
        "  is random bits, NaN included, which JSON cannot carry.",
        '- "One batch\'s compute" in the p99 goal is the in-process time of a batch of',
        "  min(8, max_batch_size) rows, the batch 8 clients can form.",
        "- Anything else running on the machine competes for the two cores (see the load",
        "  average above): with a load average over 2 the served numbers come out lower and",
        "  noisier than on an idle machine.",
        "- Raw perf_analyzer CSVs and `results.json` are in `bench-results/` (not committed).",
        "",
        "## Running it",
        "",
        "`make bench` needs `taskset` and two cores. The first run fetches perf_analyzer's wheel",
        "from PyPI and, when the system glibc is older than 2.38, Debian 13's `libc6`,",
        "`libstdc++6` and `libgcc-s1` through apt-get with a private configuration; both are",
        "unpacked under `bench-results/tools/` and reused afterwards. Nothing is installed",
        f"system-wide. This run took {m.duration_s / 60:.1f} minutes; `--window-ms`,",
        "`--inprocess-s`, `--concurrency`, `--models` and `--workers 1` (see",
        "`python -m benchmarks.run --help`; `make bench BENCH_ARGS=...`) make it shorter.",
    ]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _yes(ok: bool) -> str:
    return "yes" if ok else "**no**"
