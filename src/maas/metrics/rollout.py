"""Prometheus metrics of roll-outs: loads, failed loads, swaps, guards and shadow traffic."""

from __future__ import annotations

import contextlib

from prometheus_client import CollectorRegistry, Counter, Gauge

SHADOW_OUTCOMES = ("match", "mismatch", "error")


class RolloutMetrics:
    """The roll-out metric families of one server.

    Args:
        registry: where the families are registered (the server's own registry).
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self._failed: set[tuple[str, str]] = set()
        self.load_failures = Counter(
            "maas_version_load_failures_total",
            "Versions that could not be loaded or warmed up (missing or corrupt artifact, ...).",
            ["model", "version"],
            registry=registry,
        )
        self.load_failed = Gauge(
            "maas_version_load_failed",
            "1 while the newest attempt to load a version failed.",
            ["model", "version"],
            registry=registry,
            multiprocess_mode="livemax",  # failed in any live worker
        )
        self.swaps = Counter(
            "maas_routing_swaps_total",
            "Routing tables swapped in after the registry changed.",
            registry=registry,
        )
        self.polls = Counter(
            "maas_registry_polls_total",
            "Registry polls by outcome (ok, error).",
            ["outcome"],
            registry=registry,
        )
        self.guard_trips = Counter(
            "maas_route_guard_trips_total",
            "Route targets taken out of a split because they breached the route's guard.",
            ["model", "version"],
            registry=registry,
        )
        self.shadow_comparisons = Counter(
            "maas_shadow_comparisons_total",
            "Copies of live requests answered by a shadow version, by outcome (match, ...).",
            ["model", "version", "outcome"],
            registry=registry,
        )

    def on_load_failed(self, model: str, version: str) -> None:
        """Count a failed load and flag the version."""
        self.load_failures.labels(model, version).inc()
        self.load_failed.labels(model, version).set(1)
        self._failed.add((model, version))

    def on_loaded(self, model: str, version: str) -> None:
        """Clear the failed flag of a version that now loaded."""
        if (model, version) in self._failed:
            self._failed.discard((model, version))
            self.load_failed.labels(model, version).set(0)  # what workers' metric files keep
        with contextlib.suppress(KeyError):
            self.load_failed.remove(model, version)
