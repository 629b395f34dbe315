"""`ModelManager`: keeps a running server's loaded versions in step with the registry.

Every poll (and at once after a management call) it reads the plan from the registry, loads and
warms new versions in the background, swaps the routing table in one assignment, then drains the
versions that left it (waits for their in-flight requests) and stops their batchers. A version
that fails to load or warm up is never swapped in: whatever answered before keeps answering, and
the failure shows in model metadata, in `maas_version_load_failures_total` and in the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np

from maas.errors import MaasError, ModelNotFound, Unavailable
from maas.serving.dataplane import DataPlane
from maas.serving.plan import ModelPlan, ServedModels, read_plan
from maas.serving.repository import LoadedVersion, RoutingTable, load_version
from maas.serving.tables import TableInputs, VersionKey, build_table
from maas.serving.tuned import policy_for_version
from maas.signature import V2_TO_NUMPY, Signature

if TYPE_CHECKING:
    from maas.registry.routes import Route, RouteGuard
    from maas.registry.store import Registry
    from maas.registry.versions import ModelVersion

log = logging.getLogger(__name__)

RETRY_FAILED_S = 30.0  # a failed version is tried again this often (a fixed artifact heals)
DRAIN_POLL_S = 0.01  # how often a draining version's in-flight count is read
SERVER_ACTOR = "server"  # who the audit trail names for what a server does on its own


@dataclass(frozen=True)
class LoadFailure:
    """Why a version is not loaded, and when it was last tried (monotonic seconds)."""

    reason: str
    at: float


@dataclass(frozen=True)
class IndexEntry:
    """One row of the model repository index (Triton's `RepositoryIndex`)."""

    name: str
    version: str
    state: str  # READY or UNAVAILABLE
    reason: str = ""


class ModelManager:
    """Follows the registry for one data plane.

    Args:
        registry: where versions, aliases and routes are read (and guard trips written).
        data_plane: whose repository gets the new routing tables.
        models: `NAME[@REF]` served; empty: the serve file's list, else every registered model.
    """

    def __init__(
        self, registry: Registry, data_plane: DataPlane, models: Sequence[str] | None = None
    ) -> None:
        self._registry = registry
        self._dp = data_plane
        self._config = data_plane.config
        refs = list(models) if models else list(self._config.models)
        self._served = ServedModels.from_refs(refs)
        self._loaded: dict[VersionKey, LoadedVersion] = {
            (item.name, item.model.version): item for item in data_plane.repository
        }
        self._failed: dict[VersionKey, LoadFailure] = {}
        self._trips: dict[tuple[str, str], str] = {}
        self._trip_stamps: dict[tuple[str, str], datetime | None] = {}  # route written at
        self._plans: dict[str, ModelPlan] = {}
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        data_plane.repository.on_trip = self._on_trip

    @property
    def registry(self) -> Registry:
        """The registry this manager follows."""
        return self._registry

    async def start(self) -> None:
        """Reconcile once, then poll every `poll_interval_s` (never when it is 0)."""
        await self.refresh()
        if self._config.poll_interval_s > 0:
            self._task = asyncio.create_task(self._poll(), name="maas-model-manager")

    async def stop(self) -> None:
        """Stop polling and wait for drains and audit writes under way."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

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
                self._dp.rollout.polls.labels("error").inc()
                log.error("manager.poll_failed", exc_info=err)

    async def refresh(self, *, retry_failed: bool = False) -> None:
        """Read the registry, load what is new, swap the table, drain what left it."""
        async with self._lock:
            plans = await asyncio.to_thread(read_plan, self._registry, self._served, self._config)
            self._plans = plans
            await self._load_missing(plans, retry_failed=retry_failed)
            self._forget_trips(plans)
            repository = self._dp.repository
            old = repository.table
            failures = {key: failure.reason for key, failure in self._failed.items()}
            table = build_table(TableInputs(plans, self._loaded, old, self._trips, failures))
            kept = {(n, int(v)) for n, by_v in table.versions.items() for v in by_v}
            for name, by_version in table.versions.items():
                for number, item in by_version.items():
                    self._loaded[(name, int(number))] = item  # with the registry's facts now
            if table != old:
                repository.install(table)
                self._dp.metrics.models_loaded.set(len(kept))
                if _served_versions(table) != _served_versions(old):
                    self._dp.rollout.swaps.inc()
                    log.info("routing.swapped", extra={"versions": sorted(kept)})
            for key in [key for key in self._loaded if key not in kept]:
                self._spawn(self._drain(self._loaded.pop(key)))
            self._dp.rollout.polls.labels("ok").inc()

    # -- loading ---------------------------------------------------------------------------

    async def _load_missing(self, plans: dict[str, ModelPlan], *, retry_failed: bool) -> None:
        now = time.monotonic()
        for name, plan in plans.items():
            for number, mv in plan.versions.items():
                key = (name, number)
                if key in self._loaded:
                    continue
                failure = self._failed.get(key)
                if failure and not retry_failed and now - failure.at < RETRY_FAILED_S:
                    continue
                loaded = await self._load(mv)
                if loaded is not None:
                    self._loaded[key] = loaded
        wanted = {(name, number) for name, plan in plans.items() for number in plan.versions}
        for key in [key for key in self._failed if key not in wanted]:
            del self._failed[key]

    async def _load(self, mv: ModelVersion) -> LoadedVersion | None:
        """Load and warm one version; on failure record why and return None."""
        key = (mv.name, mv.version)
        try:
            policy = await asyncio.to_thread(policy_for_version, self._config, self._registry, mv)
            loaded = await asyncio.to_thread(
                load_version, self._registry, mv, policy, self._dp.metrics, self._config.generation
            )
        except Exception as err:  # a missing file, a digest mismatch, a model ORT refuses
            self._fail(key, f"load failed: {err}", err)
            return None
        try:
            await self._warm_up(loaded)
        except MaasError as err:
            await asyncio.to_thread(loaded.stop)
            self._fail(key, f"warm-up failed: {err}", err)
            return None
        self._failed.pop(key, None)
        self._dp.rollout.on_loaded(mv.name, str(mv.version))
        return loaded

    async def _warm_up(self, loaded: LoadedVersion) -> None:
        """Send one sample request (a row of zeros) through the version's batcher."""
        inputs = sample_inputs(loaded.model.signature)
        if inputs is None:
            return  # unknown sizes or strings: nothing sensible to invent
        await loaded.batcher.infer(inputs, 1, timeout_s=self._config.request_timeout_s)

    def _fail(self, key: VersionKey, reason: str, err: BaseException) -> None:
        name, number = key
        is_new = key not in self._failed
        self._failed[key] = LoadFailure(reason, time.monotonic())
        self._dp.rollout.on_load_failed(name, str(number))
        log.error(
            "version.load_failed",
            exc_info=err if not isinstance(err, MaasError) else None,
            extra={"model": name, "version": number, "reason": reason},
        )
        if is_new:
            self._spawn(self._audit("load_version", f"{name}@{number}", "failed"))

    # -- draining --------------------------------------------------------------------------

    async def _drain(self, loaded: LoadedVersion) -> None:
        """Wait for the version's in-flight requests (bounded), then stop its batcher."""
        deadline = time.monotonic() + self._config.request_timeout_s
        while loaded.in_flight.count > 0 and time.monotonic() < deadline:
            await asyncio.sleep(DRAIN_POLL_S)
        await asyncio.to_thread(loaded.stop)
        with contextlib.suppress(KeyError):
            self._dp.metrics.queue_depth.remove(loaded.name, loaded.version)
        log.info("version.unloaded", extra={"model": loaded.name, "version": loaded.version})

    # -- guard trips -----------------------------------------------------------------------

    def _on_trip(self, name: str, target: str, reason: str) -> None:
        from maas.registry.routes import trip_target

        self._trips[(name, target)] = reason
        plan = self._plans.get(name)
        self._trip_stamps[(name, target)] = plan.route.updated_at if plan and plan.route else None
        version = self._dp.repository.table.routes[name].targets.get(target, target)
        self._dp.rollout.guard_trips.labels(name, version).inc()
        work = asyncio.to_thread(trip_target, self._registry, name, target, reason, SERVER_ACTOR)
        self._spawn(self._quietly(work, "route.trip_write_failed"))

    def _forget_trips(self, plans: dict[str, ModelPlan]) -> None:
        """Drop trips of routes that were replaced (a new route starts with clean guards)."""
        for key in list(self._trips):
            name, _ = key
            route = plans[name].route if name in plans else None
            if route is None or route.updated_at != self._trip_stamps.get(key):
                del self._trips[key]
                self._trip_stamps.pop(key, None)

    # -- management ------------------------------------------------------------------------

    async def load_model(self, name: str, actor: str | None = None) -> None:
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
            if name not in self._dp.repository.model_names():
                if name not in self._plans:
                    raise ModelNotFound(f"model {name!r} has no version in the registry")
                reasons = "; ".join(self._dp.repository.failures(name).values()) or "unknown"
                raise Unavailable(f"model {name!r} could not be loaded: {reasons}")
        except MaasError as err:
            outcome = err.code.value
            raise
        finally:
            await self._audit("repository_load", name, outcome, actor)

    async def unload_model(self, name: str, actor: str | None = None) -> None:
        """Stop serving `name` (its versions drain first); audited as `repository_unload`.

        Raises:
            ModelNotFound: the model is not served here.
        """
        if name not in self._dp.repository.model_names():
            await self._audit("repository_unload", name, "not_found", actor)
            raise ModelNotFound(f"model {name!r} is not served here")
        self._served = ServedModels(
            self._served.refs, self._served.added - {name}, self._served.removed | {name}
        )
        await self.refresh()
        await self._audit("repository_unload", name, "ok", actor)

    async def set_alias(self, name: str, alias: str, version: int, actor: str | None) -> None:
        """Point an alias at a version in the registry (audited there), then follow it."""
        await asyncio.to_thread(self._registry.set_alias, name, alias, version, actor)
        await self.refresh()

    async def rollback(self, name: str, alias: str, actor: str | None) -> tuple[int, int]:
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
        actor: str | None,
    ) -> Route:
        """Write a model's route to the registry (audited there), then follow it."""
        from maas.registry.routes import set_route

        route = await asyncio.to_thread(
            lambda: set_route(self._registry, name, split, guard=guard, shadow=shadow, actor=actor)
        )
        await self.refresh()
        return route

    async def clear_route(self, name: str, actor: str | None) -> bool:
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
        table = self._dp.repository.table
        entries: list[IndexEntry] = []
        for name, plan in sorted(self._plans.items()):
            served = table.versions.get(name, {})
            for number in sorted(set(plan.versions) | {int(v) for v in served}):
                failure = self._failed.get((name, number))
                if str(number) in served:
                    entries.append(IndexEntry(name, str(number), "READY"))
                elif failure is not None:
                    entries.append(IndexEntry(name, str(number), "UNAVAILABLE", failure.reason))
        for name in sorted(self._served.removed):
            entries.append(IndexEntry(name, "", "UNAVAILABLE", "unloaded"))
        return entries

    # -- helpers ---------------------------------------------------------------------------

    async def _audit(
        self, action: str, target: str, outcome: str, actor: str | None = None
    ) -> None:
        work = asyncio.to_thread(
            self._registry.record_audit, actor or SERVER_ACTOR, action, target, outcome
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


def sample_inputs(signature: Signature) -> dict[str, np.ndarray] | None:
    """One row of zeros per input, or None when a size or type cannot be invented."""
    inputs: dict[str, np.ndarray] = {}
    for spec in signature.inputs:
        dims = [1 if d == -1 and i == 0 else d for i, d in enumerate(spec.shape)]
        if spec.datatype == "BYTES" or any(d < 0 for d in dims) or not dims or dims[0] != 1:
            return None
        inputs[spec.name] = np.zeros(dims, dtype=V2_TO_NUMPY[spec.datatype])
    return inputs


def _served_versions(table: RoutingTable) -> set[tuple[str, str]]:
    return {(name, v) for name, by_v in table.versions.items() for v in by_v}
