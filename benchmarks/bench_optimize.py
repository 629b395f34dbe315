"""Optimization figures for docs/optimize.md: int8 and pruning against fp32, measured in one run.

    python -m benchmarks.bench_optimize [--out bench-results/optimize.json]

Steps: train the digits MLP and CNN from examples/ into a temporary registry; quantize each
(static int8, objective size, then objective latency) and prune the MLP (structured 50%, 5
fine-tuning epochs); then quantize the serving benchmark's CNN (1x64x64, random weights,
calibrated on random images) and time it against fp32 at batch 1 and 32, one thread,
interleaved. Timings are ratios within this run; the machine and its load change absolutes.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.models import cnn
from maas.config import load_settings
from maas.evaluate.timing import compare_latency, open_session
from maas.optimize import quantize as q
from maas.optimize.pruning import PruneRequest, prune_version
from maas.optimize.quantizing import QuantizeRequest, quantize_version
from maas.pipeline import train
from maas.registry import Registry
from maas.registry.versions import ModelVersion
from maas.train.spec import load_spec

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
ROOT_ROWS = 64  # random images used to calibrate and time the benchmark CNN


def _cpu() -> dict[str, Any]:
    flags = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        flags = next(
            (line for line in cpuinfo.read_text().splitlines() if line.startswith("flags")), ""
        )
    names = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")
    return {
        "processor": platform.processor() or platform.machine(),
        "int8_flags": [f for f in names if f" {f}" in flags],
    }


def _figures(mv: ModelVersion | None) -> dict[str, Any] | None:
    if mv is None:
        return None
    keys = (
        "test_accuracy",
        "size_bytes",
        "latency_ms_b1",
        "latency_ms_b32",
        "throughput_b32",
        "speedup_vs_parent",
        "size_ratio_vs_parent",
        "parent_test_accuracy",
        "parent_size_bytes",
        "parent_latency_ms_b1",
        "parent_throughput_b32",
        "parameters",
    )
    return {"ref": mv.ref, "precision": mv.lineage.get("precision")} | {
        k: mv.metrics[k] for k in keys if k in mv.metrics
    }


def zoo_figures(registry: Registry, parent: ModelVersion) -> dict[str, Any]:
    """Static int8 with both objectives (and structured pruning for the MLP)."""
    out: dict[str, Any] = {
        "parent": parent.ref,
        "parent_accuracy": parent.metrics["test_accuracy"],
        "parent_size_bytes": parent.size_bytes,
    }
    for objective in ("size", "latency"):
        outcome = quantize_version(
            registry,
            parent.name,
            parent.version,
            QuantizeRequest("static", objective),  # type: ignore[arg-type]
        )
        out[f"static_{objective}"] = {
            "reason": outcome.reason,
            "registered": _figures(outcome.registered),
            "candidates": outcome.candidates,
        }
        print(f"{parent.ref} static int8, objective {objective}: {outcome.reason}")
    if parent.name.endswith("mlp"):
        request = PruneRequest(0.5, "structured", finetune_epochs=5)
        outcome = prune_version(registry, parent.name, parent.version, request)
        out["prune_structured"] = {
            "reason": outcome.reason,
            "registered": _figures(outcome.registered),
        }
        print(f"{parent.ref} structured pruning: {outcome.reason}")
    return out


def bench_cnn_figures() -> dict[str, Any]:
    """The serving benchmark's CNN (1x64x64): static int8 vs fp32, batch 1 and 32, one thread."""
    model = cnn()
    rng = np.random.default_rng(0)
    rows = rng.random((ROOT_ROWS, *model.row_shape), dtype=np.float32)
    prepared = q.prepare_graph(model.onnx_bytes)
    variants = {
        "fp32": model.onnx_bytes,
        "int8": q.quantize_static_int8(prepared, rows, q.StaticOptions()),
        "int8-compact": q.quantize_static_int8(
            prepared, rows, q.StaticOptions(per_channel=False), compact=True
        ),
    }
    sessions = {name: open_session(data) for name, data in variants.items()}
    fp32_labels = sessions["fp32"].run(["label"], {"input": rows})[0]
    b1 = compare_latency(sessions, rows, 1, runs=200, rounds=5)
    b32 = compare_latency(sessions, rows, 32, runs=40, rounds=5)
    out: dict[str, Any] = {}
    for name, data in variants.items():
        labels = sessions[name].run(["label"], {"input": rows})[0]
        out[name] = {
            "size_bytes": len(data),
            "p50_ms_b1": b1[name].p50_ms,
            "p50_ms_b32": b32[name].p50_ms,
            "speedup_b1": b1["fp32"].p50_ms / b1[name].p50_ms,
            "speedup_b32": b32["fp32"].p50_ms / b32[name].p50_ms,
            "label_agreement_with_fp32": float(np.mean(labels == fp32_labels)),
        }
        print(f"bench cnn {name}: {out[name]}")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench-results/optimize.json"))
    args = parser.parse_args(argv)
    results: dict[str, Any] = {"cpu": _cpu()}
    with tempfile.TemporaryDirectory(prefix="maas-bench-optimize-") as tmp:
        settings = load_settings(home=Path(tmp))
        for example in ("digits-mlp.yaml", "digits-cnn.yaml"):
            version = train(load_spec(EXAMPLES / example), settings).version
            assert version is not None  # train registers by default
            with Registry.from_settings(settings) as registry:
                results[version.name] = zoo_figures(registry, version)
    results["bench-cnn"] = bench_cnn_figures()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1, sort_keys=True, default=str))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
