"""`GuardTrips`: the route guard trips one server has seen.

The repository reports a trip the moment a guard breaches; this keeps it (so the next routing
tables leave the target out of the split until its route is replaced), counts it in
`maas_route_guard_trips_total` and writes it to the registry in the background, so that other
servers and `maas route show` see it too.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING

from maas.actors import Actor
from maas.metrics.rollout import RolloutMetrics
from maas.serving.plan import ModelPlan
from maas.serving.repository import Trip

if TYPE_CHECKING:
    from maas.registry.store import Registry

log = logging.getLogger(__name__)

# Who the audit trail names for what a server does on its own.
SERVER = Actor("server", "server")

TripKey = tuple[str, str]  # (model, route target)


class GuardTrips:
    """Trips by (model, route target), each remembered while its route stays the same.

    Args:
        registry: where each trip is written (`registry.routes.trip_target`).
        rollout: where trips are counted.
    """

    def __init__(self, registry: Registry, rollout: RolloutMetrics) -> None:
        self._registry = registry
        self._rollout = rollout
        self._reasons: dict[TripKey, str] = {}
        self._stamps: dict[TripKey, datetime | None] = {}  # the route's write time at the trip
        self._routes_at: dict[str, datetime | None] = {}  # model -> its route's write time now
        self._writes: set[asyncio.Task[None]] = set()

    @property
    def reasons(self) -> Mapping[TripKey, str]:
        """(model, target) -> which limit it breached."""
        return self._reasons

    def record(self, trip: Trip) -> None:
        """Keep, count and write one trip (called on the event loop)."""
        key = (trip.model, trip.target)
        self._reasons[key] = trip.reason
        self._stamps[key] = self._routes_at.get(trip.model)
        self._rollout.guard_trips.labels(trip.model, trip.version).inc()
        task = asyncio.create_task(self._write(trip))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    def follow(self, plans: Mapping[str, ModelPlan]) -> None:
        """Take the routes of a new plan; forget trips of routes that were replaced (a new
        route starts with clean guards)."""
        self._routes_at = {
            name: plan.route.updated_at for name, plan in plans.items() if plan.route is not None
        }
        for key in list(self._reasons):
            name, _ = key
            if name not in self._routes_at or self._routes_at[name] != self._stamps.get(key):
                del self._reasons[key]
                self._stamps.pop(key, None)

    async def stop(self) -> None:
        """Wait for the registry writes under way."""
        if self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)

    async def _write(self, trip: Trip) -> None:
        from maas.registry.routes import trip_target

        try:
            await asyncio.to_thread(
                trip_target, self._registry, trip.model, trip.target, trip.reason, SERVER
            )
        except Exception as err:  # a background write failing must not stop serving
            log.error("route.trip_write_failed", exc_info=err)
