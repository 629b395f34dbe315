"""The report's sections that compare `maas serve` with the hand-written FastAPI reference
server and with `maas serve --workers N`, all on the same server core."""

from __future__ import annotations

from dataclasses import dataclass

from benchmarks.perf_analyzer import PerfResult

Served = dict[str, dict[str, dict[int, PerfResult]]]  # model -> protocol -> clients -> result

GOAL_OVER_REFERENCE = {  # maas throughput over the reference's, same protocol, most clients
    ("mlp", "rest-json"): 4.0,
    ("mlp", "rest-binary"): 5.0,
    ("cnn", "rest-json"): 3.0,
}
GOAL_GRPC_OVER_REST_BINARY = 0.7  # unary gRPC throughput over REST binary, most clients


@dataclass(frozen=True)
class Workers:
    """`maas serve --workers N` measured on a few runs, or why it was not."""

    count: int
    served: Served
    note: str | None  # why nothing was measured


def reference_section(served: Served, reference: Served, server: str) -> list[str]:
    """Goals against the reference and the side-by-side table."""
    if not reference:
        return []
    return [
        "## Against a hand-written FastAPI server (same core)",
        "",
        "The reference is what a user would write by hand (`benchmarks/reference_app.py`):",
        f"{server}, one process pinned to core 0 like `maas serve`, one single-threaded",
        "onnxruntime session per model run once per request on the event loop (no batching),",
        "answers built with the standard library's json, no access log. It implements just",
        "enough of the v2 REST protocol for perf_analyzer, the binary tensor extension",
        "included, so REST binary is compared binary with binary. perf_analyzer drives it from",
        "core 1 in the same run with the same input rows, windows and stability rule. Ratios",
        "are maas throughput over the reference's at the same number of clients: with both",
        "servers on one core, that is the gain per core.",
        "",
        *_reference_goals(served, reference),
        "",
        *_side_by_side(served, reference),
        "",
    ]


def _reference_goals(served: Served, reference: Served) -> list[str]:
    rows = ["| goal | target | measured | met |", "| --- | --- | --- | --- |"]
    for (model, protocol), target in GOAL_OVER_REFERENCE.items():
        if model not in served:
            continue
        theirs = _at_most_clients(reference, model, protocol)
        ours = served[model].get(protocol, {}).get(theirs.concurrency) if theirs else None
        if theirs is None or ours is None:
            rows.append(
                f"| {model} {protocol}: maas / reference | >= {target:.0f}x | "
                "not measured (see the log) | - |"
            )
            continue
        ratio = ours.throughput / theirs.throughput
        rows.append(
            f"| {model} {protocol}, {_clients(ours)}: maas / reference | "
            f">= {target:.0f}x | {ratio:.2f}x ({ours.throughput:,.0f} vs "
            f"{theirs.throughput:,.0f} infer/s) | {_yes(ratio >= target)} |"
        )
    for model in served:
        grpc = _at_most_clients(served, model, "grpc")
        binary = _at_most_clients(served, model, "rest-binary")
        if grpc is None or binary is None:
            continue
        ratio = grpc.throughput / binary.throughput
        rows.append(
            f"| {model}, {_clients(grpc)}: maas unary gRPC / maas REST binary | "
            f">= {GOAL_GRPC_OVER_REST_BINARY} | {ratio:.2f} ({grpc.throughput:,.0f} vs "
            f"{binary.throughput:,.0f} infer/s) | {_yes(ratio >= GOAL_GRPC_OVER_REST_BINARY)} |"
        )
    return rows


def _side_by_side(served: Served, reference: Served) -> list[str]:
    rows = [
        "| model | protocol | clients | maas infer/s | reference infer/s | ratio "
        "| maas CPU µs/req | reference CPU µs/req | CPU ratio |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for model, protocols in reference.items():
        for protocol, results in protocols.items():
            for clients, theirs in results.items():
                ours = served.get(model, {}).get(protocol, {}).get(clients)
                if ours is None:
                    continue
                cpu_ratio = ""
                if ours.server_cpu_us and theirs.server_cpu_us:
                    cpu_ratio = f"{theirs.server_cpu_us / ours.server_cpu_us:.2f}"
                rows.append(
                    f"| {model} | {protocol} | {clients} | {_rate(ours)} | {_rate(theirs)} | "
                    f"{ours.throughput / theirs.throughput:.2f} | {_cpu(ours.server_cpu_us)} | "
                    f"{_cpu(theirs.server_cpu_us)} | {cpu_ratio} |"
                )
    return [
        *rows,
        "",
        "CPU µs/req is each server's CPU time over the requests it answered; the CPU ratio",
        "(reference over maas) is the gain per core with the core to each server alone, steadier",
        "than the throughput ratio when other work shares the machine. \\* marks a measurement",
        "without a stable window.",
    ]


def workers_section(served: Served, workers: Workers) -> list[str]:
    """workers=1 (the main runs) beside workers=N, or why there is nothing to show."""
    n = max(workers.count, 2)
    lines = [f"## Workers (`maas serve --workers {n}` beside one worker, same core)", ""]
    if workers.note is not None:
        return [*lines, f"Throughput and server CPU per request: {workers.note}", ""]
    rows = [
        f"| model | protocol | clients | infer/s, 1 worker | infer/s, {n} workers "
        f"| CPU µs/req, 1 worker | CPU µs/req, {n} workers |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for model, protocols in workers.served.items():
        for protocol, results in protocols.items():
            for clients, many in results.items():
                one = served.get(model, {}).get(protocol, {}).get(clients)
                if one is None:
                    continue
                rows.append(
                    f"| {model} | {protocol} | {clients} | {_rate(one)} | {_rate(many)} | "
                    f"{_cpu(_cpu_per_request(one))} | {_cpu(_cpu_per_request(many))} |"
                )
    return [
        *lines,
        *rows,
        "",
        "Every worker process is pinned to core 0, like the single server. CPU µs/req is the",
        "CPU time of the server's whole process tree per second of the run (psutil), over the",
        "measured throughput: each worker keeps its own statistics, so the answered count of",
        "one worker cannot be used. Both columns are computed this way.",
        "",
    ]


def _cpu_per_request(r: PerfResult) -> float | None:
    if r.server_cpu_share is None or r.throughput <= 0:
        return None
    return r.server_cpu_share / r.throughput * 1e6


def _at_most_clients(served: Served, model: str, protocol: str) -> PerfResult | None:
    results = served.get(model, {}).get(protocol, {})
    return results[max(results)] if results else None


def _clients(r: PerfResult) -> str:
    return f"{r.concurrency} client" + ("" if r.concurrency == 1 else "s")


def _rate(r: PerfResult) -> str:
    return f"{r.throughput:,.0f}" + ("" if r.is_stable else " \\*")


def _cpu(us: float | None) -> str:
    return f"{us:,.0f}" if us else ""


def _yes(ok: bool) -> str:
    return "yes" if ok else "**no**"
