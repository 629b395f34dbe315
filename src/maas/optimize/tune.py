"""Serving configuration tuned to a model on this machine: batch size, instances, queue delay.

Each (instances, batch size) point runs that many onnxruntime sessions (one thread each) in
parallel threads, back to back, for a short while, measuring per-call latency and rows per second.
A request's p99 latency is then estimated as the queue delay it may wait for a batch to fill, plus
one call already in progress, plus its own call (2 x call p99 + delay). The best point is the
highest throughput whose estimate fits the budget. Torch-free: it needs only the ONNX artifact.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from maas.actors import AnyActor
from maas.config import ModelServeConfig, ServeFile, load_serve_file
from maas.errors import InvalidInput
from maas.evaluate.timing import WARMUP_RUNS, batch_of, open_session, summarize
from maas.registry.serving_configs import StoredServingConfig
from maas.registry.store import Registry
from maas.runtime.hardware import HardwareProfile, hardware_profile

log = logging.getLogger(__name__)

BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64)
PROFILE_S = 0.3  # per point: long enough for a stable median, short enough for ~30 points
MAX_INSTANCES = 4  # beyond the core count more instances only contend


@dataclass(frozen=True)
class TunePoint:
    """One measured configuration."""

    instances: int
    batch: int
    call_p50_ms: float
    call_p99_ms: float
    throughput_rows_s: float
    max_queue_delay_us: int
    est_p99_ms: float

    def to_dict(self) -> dict[str, float]:
        """JSON-ready form."""
        return {k: float(v) for k, v in self.__dict__.items()}


@dataclass(frozen=True)
class TuneResult:
    """The chosen configuration, every measured point, and the hardware they hold for."""

    ref: str
    p99_budget_ms: float
    profile: HardwareProfile
    best: TunePoint
    points: tuple[TunePoint, ...]

    def serve_config(self) -> ModelServeConfig:
        """The chosen point as a serve-file model entry."""
        return ModelServeConfig(
            ref=self.ref.split("@", 1)[1],
            max_batch_size=self.best.batch,
            max_queue_delay_us=self.best.max_queue_delay_us,
            instances=self.best.instances,
            intra_op_threads=1,
        )

    def stored_config(self) -> dict[str, Any]:
        """What is stored with the version: the batching fields a server applies and the
        evidence they were chosen on."""
        b = self.best
        return {
            "max_batch_size": b.batch,
            "max_queue_delay_us": b.max_queue_delay_us,
            "instances": b.instances,
            "intra_op_threads": 1,
            "p99_budget_ms": self.p99_budget_ms,
            "est_p99_ms": b.est_p99_ms,
            "throughput_rows_s": b.throughput_rows_s,
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "ref": self.ref,
            "p99_budget_ms": self.p99_budget_ms,
            "hardware": {"cpu": self.profile.cpu, "cores": self.profile.cores},
            "best": self.best.to_dict(),
            "points": [p.to_dict() for p in self.points],
        }


def _run_instances(
    model_bytes: bytes, rows: np.ndarray, instances: int, duration_s: float
) -> tuple[list[float], int]:
    sessions = [open_session(model_bytes) for _ in range(instances)]
    feed = {"input": rows}
    for session in sessions:
        for _ in range(WARMUP_RUNS):
            session.run(None, feed)
    samples: list[list[float]] = [[] for _ in sessions]
    start = threading.Barrier(instances + 1)
    deadline = [0.0]

    def work(i: int) -> None:
        start.wait()
        while time.perf_counter() < deadline[0]:
            began = time.perf_counter()
            sessions[i].run(None, feed)
            samples[i].append((time.perf_counter() - began) * 1000.0)

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(instances)]
    for thread in threads:
        thread.start()
    deadline[0] = time.perf_counter() + duration_s
    start.wait()
    for thread in threads:
        thread.join()
    flat = [v for per in samples for v in per]
    return flat, len(flat) * len(rows)


def measure_point(
    model_bytes: bytes,
    rows: np.ndarray,
    instances: int,
    batch: int,
    budget_ms: float,
    duration_s: float = PROFILE_S,
) -> TunePoint:
    """Measure one (instances, batch) point and estimate a request's p99 under it."""
    feed_rows = batch_of(rows, batch)
    samples, total_rows = _run_instances(model_bytes, feed_rows, instances, duration_s)
    stats = summarize(batch, samples or [float("inf")])
    spare_ms = budget_ms - 2 * stats.p99_ms
    delay_ms = 0.0 if batch == 1 else max(0.0, min(stats.p50_ms, spare_ms))
    return TunePoint(
        instances=instances,
        batch=batch,
        call_p50_ms=stats.p50_ms,
        call_p99_ms=stats.p99_ms,
        throughput_rows_s=total_rows / duration_s,
        max_queue_delay_us=round(delay_ms * 1000),
        est_p99_ms=2 * stats.p99_ms + delay_ms,
    )


def tune(
    model_bytes: bytes,
    rows: np.ndarray,
    ref: str,
    p99_budget_ms: float,
    *,
    batches: Sequence[int] = BATCH_SIZES,
    max_instances: int | None = None,
    duration_s: float = PROFILE_S,
) -> TuneResult:
    """Profile the model over instance counts and batch sizes; pick the best within the budget.

    Raises:
        InvalidInput: the budget is not positive, or no configuration fits it.
    """
    if p99_budget_ms <= 0:
        raise InvalidInput(f"--p99-ms must be positive, got {p99_budget_ms}")
    profile = hardware_profile()
    top = max_instances or min(profile.cores, MAX_INSTANCES)
    points = []
    for instances in range(1, top + 1):
        for batch in batches:
            point = measure_point(model_bytes, rows, instances, batch, p99_budget_ms, duration_s)
            points.append(point)
            log.info("tune.point", extra=point.to_dict())
            if point.est_p99_ms > p99_budget_ms:
                break  # larger batches only take longer
    feasible = [p for p in points if p.est_p99_ms <= p99_budget_ms]
    if not feasible:
        fastest = min(points, key=lambda p: p.est_p99_ms)
        raise InvalidInput(
            f"no configuration of {ref} meets p99 {p99_budget_ms:g} ms on this machine; the "
            f"fastest (batch {fastest.batch}, {fastest.instances} instance(s)) is estimated at "
            f"{fastest.est_p99_ms:.3f} ms"
        )
    best = max(feasible, key=lambda p: (p.throughput_rows_s, -p.instances, -p.batch))
    return TuneResult(ref, p99_budget_ms, profile, best, tuple(points))


def store_tuned_config(
    registry: Registry, name: str, version: int, result: TuneResult, actor: AnyActor = None
) -> StoredServingConfig:
    """Store the chosen configuration with `name@version` for this result's hardware profile."""
    stored = registry.set_serving_config(
        name, version, result.profile.key, result.stored_config(), actor
    )
    log.info(
        "tune.stored",
        extra={"model": name, "version": version, "profile": result.profile.key},
    )
    return stored


def write_serve_file(path: Path, name: str, result: TuneResult) -> ServeFile:
    """Add (or replace) the model's entry in a serve file, keeping everything else in it."""
    current = load_serve_file(path) if path.exists() else ServeFile()
    models = dict(current.models)
    models[name] = result.serve_config()
    updated = current.model_copy(update={"models": models})
    header = (
        f"# {name}: tuned by `maas tune {result.ref} --p99-ms {result.p99_budget_ms:g}` on "
        f"{result.profile.cpu}, {result.profile.cores} cores; estimated p99 "
        f"{result.best.est_p99_ms:.3f} ms at {result.best.throughput_rows_s:,.0f} rows/s\n"
    )
    body = yaml.safe_dump(updated.model_dump(mode="json", exclude_none=True), sort_keys=False)
    path.write_text(header + body)
    return load_serve_file(path)
