"""Serving metrics on a fresh registry, and the Triton-style statistics beside them."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from maas.batching.batcher import BatchTiming
from maas.metrics.prometheus import ServingMetrics


def test_batches_and_requests_are_recorded() -> None:
    registry = CollectorRegistry()
    metrics = ServingMetrics(registry)
    version = metrics.for_version("m", "2")
    version.on_batch(BatchTiming(5, 2, (1000, 3000), 100, 2000, 300, ok=True))
    version.on_batch(BatchTiming(1, 1, (500,), 10, 20, 30, ok=True))
    version.on_request("rest", "ok", 4_000_000)
    version.on_request("grpc", "invalid_argument", 1_000)
    version.on_rejected("rest", "payload_too_large")
    labels = {"model": "m", "version": "2"}
    assert registry.get_sample_value("maas_batch_size_sum", labels) == 6
    assert registry.get_sample_value("maas_batch_size_count", labels) == 2
    assert registry.get_sample_value("maas_queue_duration_seconds_count", labels) == 3
    assert registry.get_sample_value("maas_compute_duration_seconds_count", labels) == 2
    assert registry.get_sample_value("maas_request_duration_seconds_count", labels) == 2
    ok = {**labels, "protocol": "rest", "code": "ok"}
    assert registry.get_sample_value("maas_requests_total", ok) == 1
    too_large = {**labels, "protocol": "rest", "code": "payload_too_large"}
    assert registry.get_sample_value("maas_requests_total", too_large) == 1

    stats = version.statistics.to_dict()
    assert stats["inference_count"] == 6
    assert stats["execution_count"] == 2
    inference = stats["inference_stats"]
    assert inference["success"] == {"count": 1, "ns": 4_000_000}
    assert inference["fail"]["count"] == 2
    assert inference["queue"] == {"count": 3, "ns": 4500}
    assert inference["compute_infer"] == {"count": 3, "ns": 2000 * 2 + 20}
    assert [b["batch_size"] for b in stats["batch_stats"]] == [1, 5]
    assert stats["batch_stats"][1]["compute_infer"] == {"count": 1, "ns": 2000}
    assert stats["last_inference"] > 0


def test_queue_depth_and_models_loaded_are_read_at_scrape_time() -> None:
    registry = CollectorRegistry()
    metrics = ServingMetrics(registry)
    depth = [3]
    metrics.for_version("m", "1").watch_queue(lambda: float(depth[0]))
    metrics.models_loaded.set(2)
    body, content_type = metrics.exposition()
    assert content_type.startswith("text/plain")
    assert b'maas_queue_depth{model="m",version="1"} 3.0' in body
    depth[0] = 0
    assert registry.get_sample_value("maas_queue_depth", {"model": "m", "version": "1"}) == 0
    assert registry.get_sample_value("maas_models_loaded") == 2
