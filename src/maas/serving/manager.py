"""`ModelManager`: keeps a running server's loaded versions in step with the registry.

At start-up, every poll and at once after a management call it reads the plan from the registry,
loads and warms new versions in the background (`VersionLoader`, the one load path), swaps the
routing table in one assignment, then drains the versions that left it (waits for their
in-flight requests) and stops their batchers. A version that fails to load or warm up is never
swapped in: whatever answered before keeps answering, and the failure shows in model metadata,
in `maas_version_load_failures_total` and in the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Coroutine, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from maas.actors import Actor
from maas.errors import MaasError, ModelNotFound, Unavailable
from maas.serving.loading import VersionLoader
from maas.serving.plan import ModelPlan, ServedModels, read_plan
from maas.serving.repository import LoadedVersion, ModelRepository, RoutingTable, select_versions
from maas.serving.tables import TableInputs, VersionKey, build_table
from maas.serving.trips import SERVER, GuardTrips

if TYPE_CHECKING:
    from maas.registry.routes import Route, RouteGuard
    from maas.registry.store import Registry
    from maas.registry.versions import ModelVersion

log = logging.getLogger(__name__)

DRAIN_POLL_S = 0.01  # how often a draining version's in-flight count is read


@dataclass(frozen=True)
class IndexEntry:
    """One row of the model repository index (Triton's `RepositoryIndex`)."""

    name: str
    version: str
    state: str  # READY or UNAVAILABLE
    reason: str = ""


class ModelManager:
    """Follows the registry for one server: start-up and every pick-up take the same path.

    Args:
        registry: where versions, aliases and routes are read (and management changes written).
        repository: what gets the new routing tables (its versions are the manager's own).
        loader: how versions are loaded, with the server's settings and metrics.
        trips: the guard trips the repository reports (kept out of the next tables).
        models: `NAME[@REF]` served; empty: the serve file's list, else every registered model.
    """

    def __init__(
        self,
        registry: Registry,
        repository: ModelRepository,
        loader: VersionLoader,
        trips: GuardTrips,
        models: Sequence[str] | None = None,
    ) -> None:
        self._registry = registry
        self._repository = repository
        self._loader = loader
        self._trips = trips
        self._config = loader.config
        self._metrics = loader.metrics
        self._rollout = loader.rollout
        self._refs = list(models) if models else list(self._config.models)
        self._served = ServedModels.from_refs(self._refs)
        self._loaded: dict[VersionKey, LoadedVersion] = {
            (item.name, item.model.version): item for item in repository
        }
        self._plans: dict[str, ModelPlan] = {}
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()

    @property
    def registry(self) -> Registry:
        """The registry this manager follows."""
        return self._registry

    async def start(self) -> None:
        """Load what the registry plans (as every poll does), then poll every
        `poll_interval_s` (never when it is 0).

        Raises:
            NotFound: a served reference names no model, version or alias.
            MaasError: versions are planned but none could be loaded (a server that can answer
                nothing is misconfigured: a wrong key, a missing signature); the first failure.
        """
        if self._refs:
            await asyncio.to_thread(select_versions, self._registry, self._refs, self._config)
        await self.refresh()
        if not self._loaded and self._loader.failures:
            raise next(iter(self._loader.failures.values())).error
        if self._config.poll_interval_s > 0:
            self._task = asyncio.create_task(self._poll(), name="maas-model-manager")

    async def stop(self) -> None:
        """Stop polling and wait for drains and audit and trip writes under way."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        await self._trips.stop()

    def wake(self) -> None:
        """Poll now instead of at the end of the interval."""
        self._wake.set()

    async def _poll(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._config.poll_interval_s)
            self._wake.clear()
            try:
                await self.refresh()
            except Exception as err:  # a worker loop is a boundary: log, count, keep polling
                self._rollout.polls.labels("error").inc()
                log.error("manager.poll_failed", exc_info=err)

    async def refresh(self, *, retry_failed: bool = False) -> None:
        """Read the registry, load what is new, swap the table, drain what left it."""
        async with self._lock:
            plans = await asyncio.to_thread(read_plan, self._registry, self._served, self._config)
            self._plans = plans
            self._trips.follow(plans)
            await self._load_missing(plans, retry_failed=retry_failed)
            repository = self._repository
            old = repository.table
            trips, failures = self._trips.reasons, self._loader.reasons()
            table = build_table(TableInputs(plans, self._loaded, old, trips, failures))
            kept = {(n, int(v)) for n, by_v in table.versions.items() for v in by_v}
            for name, by_version in table.versions.items():
                for number, item in by_version.items():
                    self._loaded[(name, int(number))] = item  # with the registry's facts now
            if table != old:
                repository.install(table)
                self._metrics.models_loaded.set(len(kept))
                if _served_versions(table) != _served_versions(old):
                    self._rollout.swaps.inc()
                    log.info("routing.swapped", extra={"versions": sorted(kept)})
            for key in [key for key in self._loaded if key not in kept]:
                self._spawn(self._drain(self._loaded.pop(key)))
            self._rollout.polls.labels("ok").inc()

    # -- loading ---------------------------------------------------------------------------

    async def _load_missing(self, plans: dict[str, ModelPlan], *, retry_failed: bool) -> None:
        for name, plan in plans.items():
            for number, mv in plan.versions.items():
                key = (name, number)
                if key in self._loaded or not self._loader.is_due(key, retry_failed=retry_failed):
                    continue
                loaded = await self._load(mv)
                if loaded is not None:
                    self._loaded[key] = loaded
        wanted = {(name, number) for name, plan in plans.items() for number in plan.versions}
        self._loader.forget(wanted)

    async def _load(self, mv: ModelVersion) -> LoadedVersion | None:
        """Load and warm one version; a refusal is audited the first time."""
        loaded = await asyncio.to_thread(self._loader.load, mv)
        failure = self._loader.failures.get((mv.name, mv.version))
        if loaded is None and failure is not None and failure.attempts == 1:
            self._spawn(self._audit("load_version", mv.ref, "failed"))
        return loaded

    # -- draining --------------------------------------------------------------------------

    async def _drain(self, loaded: LoadedVersion) -> None:
        """Wait for the version's in-flight requests (bounded), then stop its batcher."""
        deadline = time.monotonic() + self._config.request_timeout_s
        while loaded.in_flight.count > 0 and time.monotonic() < deadline:
            await asyncio.sleep(DRAIN_POLL_S)
        await asyncio.to_thread(loaded.stop)
        with contextlib.suppress(KeyError):
            self._metrics.queue_depth.remove(loaded.name, loaded.version)
        log.info("version.unloaded", extra={"model": loaded.name, "version": loaded.version})

    # -- management ------------------------------------------------------------------------

    async def load_model(self, name: str, actor: Actor | None = None) -> None:
        """Serve `name` (again) and try its failed versions now; audited as `repository_load`.

        Raises:
            ModelNotFound: no such model in the registry.
            Unavailable: none of its versions could be loaded.
        """
        self._served = ServedModels(
            self._served.refs,
            self._served.added | {name},
            self._served.removed - {name},
        )
        await self.refresh(retry_failed=True)
        outcome = "ok"
        try:
            if name not in self._repository.model_names():
                if name not in self._plans:
                    raise ModelNotFound(f"model {name!r} has no version in the registry")
                reasons = "; ".join(self._repository.failures(name).values()) or "unknown"
                raise Unavailable(f"model {name!r} could not be loaded: {reasons}")
        except MaasError as err:
            outcome = err.code.value
            raise
        finally:
            await self._audit("repository_load", name, outcome, actor)

    async def unload_model(self, name: str, actor: Actor | None = None) -> None:
        """Stop serving `name` (its versions drain first); audited as `repository_unload`.

        Raises:
            ModelNotFound: the model is not served here.
        """
        if name not in self._repository.model_names():
            await self._audit("repository_unload", name, "not_found", actor)
            raise ModelNotFound(f"model {name!r} is not served here")
        self._served = ServedModels(
            self._served.refs, self._served.added - {name}, self._served.removed | {name}
        )
        await self.refresh()
        await self._audit("repository_unload", name, "ok", actor)

    async def set_alias(self, name: str, alias: str, version: int, actor: Actor | None) -> None:
        """Point an alias at a version in the registry (audited there), then follow it."""
        await asyncio.to_thread(self._registry.set_alias, name, alias, version, actor)
        await self.refresh()

    async def rollback(self, name: str, alias: str, actor: Actor | None) -> tuple[int, int]:
        """Move `alias` back to its previous version (see `registry.routes.rollback_alias`)."""
        from maas.registry.routes import rollback_alias

        moved = await asyncio.to_thread(rollback_alias, self._registry, name, alias, actor)
        await self.refresh()
        return moved

    async def set_route(
        self,
        name: str,
        split: Sequence[tuple[str, int]],
        guard: RouteGuard | None,
        shadow: str | None,
        actor: Actor | None,
    ) -> Route:
        """Write a model's route to the registry (audited there), then follow it."""
        from maas.registry.routes import set_route

        route = await asyncio.to_thread(
            lambda: set_route(self._registry, name, split, guard=guard, shadow=shadow, actor=actor)
        )
        await self.refresh()
        return route

    async def clear_route(self, name: str, actor: Actor | None) -> bool:
        """Remove a model's route (audited), then follow."""
        from maas.registry.routes import clear_route

        removed = await asyncio.to_thread(clear_route, self._registry, name, actor)
        await self.refresh()
        return removed

    async def get_route(self, name: str) -> Route | None:
        """The model's route as the registry holds it (with any guard trips)."""
        from maas.registry.routes import get_route

        return await asyncio.to_thread(get_route, self._registry, name)

    def index(self) -> list[IndexEntry]:
        """Every version the server should serve, READY or UNAVAILABLE with the reason."""
        table = self._repository.table
        entries: list[IndexEntry] = []
        for name, plan in sorted(self._plans.items()):
            served = table.versions.get(name, {})
            for number in sorted(set(plan.versions) | {int(v) for v in served}):
                failure = self._loader.failures.get((name, number))
                if str(number) in served:
                    entries.append(IndexEntry(name, str(number), "READY"))
                elif failure is not None:
                    entries.append(IndexEntry(name, str(number), "UNAVAILABLE", failure.reason))
        for name in sorted(self._served.removed):
            entries.append(IndexEntry(name, "", "UNAVAILABLE", "unloaded"))
        return entries

    # -- helpers ---------------------------------------------------------------------------

    async def _audit(
        self, action: str, target: str, outcome: str, actor: Actor | None = None
    ) -> None:
        work = asyncio.to_thread(
            self._registry.record_audit, actor or SERVER, action, target, outcome
        )
        await self._quietly(work, "manager.audit_failed")

    async def _quietly(self, work: Awaitable[None], event: str) -> None:
        try:
            await work
        except Exception as err:  # a background write failing must not stop serving
            log.error(event, exc_info=err)

    def _spawn(self, work: Coroutine[object, object, None]) -> None:
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)


def _served_versions(table: RoutingTable) -> set[tuple[str, str]]:
    return {(name, v) for name, by_v in table.versions.items() for v in by_v}
