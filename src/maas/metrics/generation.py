"""Prometheus metrics of generative models, per model and version, on an injected registry."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# From 1 ms (a tiny model's step) to 30 s (a long prompt behind a full queue).
TOKEN_LATENCY_BUCKETS_S = (
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
    30.0,
)
STEP_SEQUENCE_BUCKETS = tuple(float(2**i) for i in range(11))  # 1 .. 1024 sequences per step


class GenerationMetrics:
    """The metric families of generation, registered once per server."""

    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ["model", "version"]
        self.time_to_first_token = Histogram(
            "maas_generate_time_to_first_token_seconds",
            "Time from a sequence's submission to its first generated token.",
            labels,
            buckets=TOKEN_LATENCY_BUCKETS_S,
            registry=registry,
        )
        self.inter_token_latency = Histogram(
            "maas_generate_inter_token_latency_seconds",
            "Time between two consecutive tokens of one sequence.",
            labels,
            buckets=TOKEN_LATENCY_BUCKETS_S,
            registry=registry,
        )
        self.output_tokens = Counter(
            "maas_generate_output_tokens_total", "Tokens generated.", labels, registry=registry
        )
        self.step_sequences = Histogram(
            "maas_generate_step_sequences",
            "Sequences decoded together in one step (continuous batching at work).",
            labels,
            buckets=STEP_SEQUENCE_BUCKETS,
            registry=registry,
        )
        self.running = Gauge(
            "maas_generate_running_sequences",
            "Sequences generating now.",
            labels,
            registry=registry,
        )
        self.waiting = Gauge(
            "maas_generate_waiting_sequences",
            "Sequences waiting for admission (KV-cache budget or batch cap).",
            labels,
            registry=registry,
        )
        self.kv_cache_bytes = Gauge(
            "maas_generate_kv_cache_bytes",
            "KV-cache bytes held by running sequences.",
            labels,
            registry=registry,
        )

    def for_version(self, model: str, version: str) -> GenerationVersionMetrics:
        """The children of one loaded generative version (a `GenerationObserver`)."""
        return GenerationVersionMetrics(self, model, version)


class GenerationVersionMetrics:
    """Metrics of one generative version; its scheduler calls `on_step` and `on_token`."""

    def __init__(self, metrics: GenerationMetrics, model: str, version: str) -> None:
        self._metrics = metrics
        self._labels = (model, version)
        self._first = metrics.time_to_first_token.labels(model, version)
        self._gap = metrics.inter_token_latency.labels(model, version)
        self._tokens = metrics.output_tokens.labels(model, version)
        self._steps = metrics.step_sequences.labels(model, version)

    def on_step(self, sequences: int) -> None:
        self._steps.observe(sequences)

    def on_token(self, is_first: bool, seconds: float) -> None:
        (self._first if is_first else self._gap).observe(seconds)
        self._tokens.inc()

    def watch(
        self, running: Callable[[], float], waiting: Callable[[], float], kv: Callable[[], float]
    ) -> None:
        """Report the scheduler's running and waiting counts and cache bytes at scrape time."""
        self._metrics.running.labels(*self._labels).set_function(running)
        self._metrics.waiting.labels(*self._labels).set_function(waiting)
        self._metrics.kv_cache_bytes.labels(*self._labels).set_function(kv)

    def forget(self) -> None:
        """Drop the gauges of an unloaded version (their functions would keep it alive)."""
        for gauge in (self._metrics.running, self._metrics.waiting, self._metrics.kv_cache_bytes):
            try:
                gauge.remove(*self._labels)
            except KeyError:
                continue
