"""Prometheus metrics of one server, built on an injected `CollectorRegistry`.

With `maas serve --workers N` every worker writes its values to files in a shared folder
(prometheus-client's multiprocess mode, chosen by `PROMETHEUS_MULTIPROC_DIR` before the first
metric exists) and `/metrics` on any worker reads them all: counters and histograms add up over
the workers (the dead ones' counts too), gauges follow their `multiprocess_mode`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from maas.batching.batcher import BatchTiming
from maas.metrics.generation import GenerationMetrics
from maas.metrics.statistics import ModelStatistics

# Latency buckets from 50 µs (one small batch) to 10 s (a stuck request).
LATENCY_BUCKETS_S = (
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
BATCH_SIZE_BUCKETS = tuple(float(2**i) for i in range(13))  # 1 .. 4096, the batch limit
UNKNOWN_MODEL = "_unknown"  # label for requests naming no loaded model (keeps labels bounded)


class ServingMetrics:
    """The metric families of one server.

    Args:
        registry: where the families are registered; tests pass a fresh one.
        multiprocess_dir: the metric files of all workers of one `maas serve --workers N`
            (the process's `PROMETHEUS_MULTIPROC_DIR`); the exposition reads them all. None: one
            process, the exposition reads `registry`.
    """

    def __init__(
        self, registry: CollectorRegistry, *, multiprocess_dir: Path | None = None
    ) -> None:
        self.registry = registry
        self.is_multiprocess = multiprocess_dir is not None
        self._exposed = registry
        if multiprocess_dir is not None:
            self._exposed = CollectorRegistry()
            MultiProcessCollector(self._exposed, path=str(multiprocess_dir))  # type: ignore[no-untyped-call]  # prometheus-client leaves it untyped
        self.requests_total = Counter(
            "maas_requests_total",
            "Inference requests answered, by model, version, protocol and status code.",
            ["model", "version", "protocol", "code"],
            registry=registry,
        )
        self.request_duration = Histogram(
            "maas_request_duration_seconds",
            "Time from a decoded request to its answer in the data plane.",
            ["model", "version"],
            buckets=LATENCY_BUCKETS_S,
            registry=registry,
        )
        self.queue_duration = Histogram(
            "maas_queue_duration_seconds",
            "Time a request waited in its batcher queue.",
            ["model", "version"],
            buckets=LATENCY_BUCKETS_S,
            registry=registry,
        )
        self.compute_duration = Histogram(
            "maas_compute_duration_seconds",
            "Time one batch spent in the model.",
            ["model", "version"],
            buckets=LATENCY_BUCKETS_S,
            registry=registry,
        )
        self.batch_size = Histogram(
            "maas_batch_size",
            "Rows in each batch run by the model.",
            ["model", "version"],
            buckets=BATCH_SIZE_BUCKETS,
            registry=registry,
        )
        self.queue_depth = Gauge(
            "maas_queue_depth",
            "Requests waiting in a batcher queue.",
            ["model", "version"],
            registry=registry,
            multiprocess_mode="livesum",  # waiting in any live worker
        )
        self.models_loaded = Gauge(
            "maas_models_loaded",
            "Model versions loaded and serving.",
            registry=registry,
            multiprocess_mode="livemax",  # every worker loads the same versions
        )
        self.generation = GenerationMetrics(registry)

    def for_version(self, model: str, version: str) -> VersionMetrics:
        """The metric children and statistics of one loaded version."""
        return VersionMetrics(self, model, version)

    def count_request(self, model: str, version: str, protocol: str, code: str) -> None:
        """Count a request that never reached a loaded version (unknown model, bad body)."""
        self.requests_total.labels(model, version, protocol, code).inc()

    def exposition(self) -> tuple[bytes, str]:
        """The text exposition format and its content type, for `GET /metrics`."""
        return generate_latest(self._exposed), CONTENT_TYPE_LATEST


class VersionMetrics:
    """Metrics of one loaded version: a `BatchObserver` for its batcher and per-request counts."""

    def __init__(self, metrics: ServingMetrics, model: str, version: str) -> None:
        self._metrics = metrics
        self._model = model
        self._version = version
        self.statistics = ModelStatistics(model, version)
        self._request_duration = metrics.request_duration.labels(model, version)
        self._queue_duration = metrics.queue_duration.labels(model, version)
        self._compute_duration = metrics.compute_duration.labels(model, version)
        self._batch_size = metrics.batch_size.labels(model, version)
        self._counters: dict[tuple[str, str], Counter] = {}
        self._queue_depth: Callable[[], float] | None = None

    def watch_queue(self, depth: Callable[[], float]) -> None:
        """Report `depth()` as this version's `maas_queue_depth`: read at scrape time in one
        process; with several workers (whose scrapes read files) written after every batch."""
        gauge = self._metrics.queue_depth.labels(self._model, self._version)
        if self._metrics.is_multiprocess:
            self._queue_depth = depth
            gauge.set(depth())
        else:
            gauge.set_function(depth)

    def on_batch(self, timing: BatchTiming) -> None:
        """Record one batch (called on a worker thread)."""
        self._batch_size.observe(timing.size)
        if self._queue_depth is not None:
            self._metrics.queue_depth.labels(self._model, self._version).set(self._queue_depth())
        self._compute_duration.observe((timing.input_ns + timing.infer_ns + timing.output_ns) / 1e9)
        for queue_ns in timing.queue_ns:
            self._queue_duration.observe(queue_ns / 1e9)
        self.statistics.on_batch(timing)

    def on_request(self, protocol: str, code: str, duration_ns: int) -> None:
        """Record one answered request; `code` is the transport-neutral outcome ("ok", ...)."""
        self._count(protocol, code)
        self._request_duration.observe(duration_ns / 1e9)
        self.statistics.on_request(code == "ok", duration_ns)

    def on_rejected(self, protocol: str, code: str) -> None:
        """Record a request refused before it reached the data plane (no duration)."""
        self._count(protocol, code)
        self.statistics.on_request(False, 0)

    def _count(self, protocol: str, code: str) -> None:
        counter = self._counters.get((protocol, code))
        if counter is None:
            counter = self._metrics.requests_total.labels(
                self._model, self._version, protocol, code
            )
            self._counters[(protocol, code)] = counter
        counter.inc()
