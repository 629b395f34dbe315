"""`ModelRepository`: which versions are loaded, each with its runners, batcher and metrics.

Versions are loaded from the registry. Each model has a route for requests that name no version
(its `production` alias, else the highest loaded, or a weighted split set in the registry) and
every loaded version is reachable by number. The routing table is an immutable snapshot replaced
as a whole (`install`), so the model manager swaps it atomically while requests read the old one.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from maas.batching.batcher import Batcher
from maas.batching.policy import BatchPolicy
from maas.errors import ModelNotFound, NotFound
from maas.metrics.prometheus import VersionMetrics
from maas.serving.options import ServingConfig
from maas.serving.routing import ModelRoute

if TYPE_CHECKING:
    from maas.generate.text import TextGenerator
    from maas.registry.versions import ModelVersion  # the registry package is heavy to import

log = logging.getLogger(__name__)

DEFAULT_ALIAS = "production"  # the alias that picks a model's default version


class ModelSource(Protocol):
    """The part of the registry the repository reads."""

    def get(self, name: str, ref: str = "latest") -> ModelVersion: ...

    def read_artifact(self, mv: ModelVersion) -> bytes: ...

    def read_file(self, mv: ModelVersion, filename: str) -> bytes: ...


class NamedModel(Protocol):
    """A registered model as `list_models()` returns it."""

    @property
    def name(self) -> str: ...


class ModelCatalog(ModelSource, Protocol):
    """A registry that can also list its models (to serve them all)."""

    def list_models(self) -> Sequence[NamedModel]: ...


class InFlight:
    """How many requests a loaded version is answering now (read by the manager to drain it)."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0


@dataclass(frozen=True)
class LoadedVersion:
    """One model version ready to answer: its facts, policy, batcher and metrics (and, for a
    generative version, its text generator)."""

    model: ModelVersion
    policy: BatchPolicy
    batcher: Batcher
    metrics: VersionMetrics
    is_batchable: bool
    in_flight: InFlight = field(default_factory=InFlight, compare=False)
    generator: TextGenerator | None = field(default=None, compare=False)

    def stop(self) -> None:
        """Stop its batcher (which finishes what it has queued) and its generator."""
        self.batcher.stop()
        if self.generator is not None:
            self.generator.stop()

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def version(self) -> str:
        return str(self.model.version)

    @functools.cached_property
    def label(self) -> str:
        """`name:version`, the way error messages name it."""
        return f"{self.model.name}:{self.model.version}"


@dataclass(frozen=True)
class RoutingTable:
    """An immutable snapshot of what is served; the repository swaps it as a whole.

    Attributes:
        versions: model -> version -> loaded version.
        routes: model -> how requests without a version are routed.
        aliases: model -> alias -> loaded version it points at (for `/versions/{alias}`).
        failures: model -> version -> why it could not be loaded.
    """

    versions: dict[str, dict[str, LoadedVersion]]
    routes: dict[str, ModelRoute]
    aliases: dict[str, dict[str, str]] = field(default_factory=dict)
    failures: dict[str, dict[str, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Trip:
    """A route guard took a version out of its model's split.

    Attributes:
        model: the model.
        target: the route target (alias, `latest` or number) that resolved to the version.
        version: the version taken out.
        reason: which limit it breached.
    """

    model: str
    target: str
    version: str
    reason: str


TripHandler = Callable[[Trip], None]


class ModelRepository:
    """The loaded versions of every served model and how each model's requests are routed.

    Args:
        loaded: the versions to serve at first (none: a model manager installs the tables).
        failures: (model, version number) -> why that version was refused.
        on_trip: told of every guard trip (on the event loop that answers the request).
    """

    def __init__(
        self,
        loaded: Sequence[LoadedVersion] = (),
        *,
        failures: Mapping[tuple[str, int], str] | None = None,
        on_trip: TripHandler | None = None,
    ) -> None:
        self._table = _build_table(loaded, failures or {})
        self._on_trip = on_trip

    @property
    def table(self) -> RoutingTable:
        """The routing table in force."""
        return self._table

    def install(self, table: RoutingTable) -> None:
        """Swap in a new routing table (one reference assignment: requests see old or new)."""
        self._table = table

    def resolve(self, name: str, version: str | None = None) -> LoadedVersion:
        """The loaded version `version` of `name`, or the one its route picks (None or empty).

        `version` may also be an alias that points at a loaded version.

        Raises:
            ModelNotFound: the model is not served, or that version is not loaded.
        """
        table = self._table
        versions = table.versions.get(name)
        if versions is None:
            raise ModelNotFound(f"model {name!r} is not served here")
        if not version:
            return versions[table.routes[name].pick()]
        loaded = versions.get(version)
        if loaded is None:
            aliased = table.aliases.get(name, {}).get(version)
            if aliased is not None:
                return versions[aliased]
            served = ", ".join(sorted(versions, key=int))
            raise ModelNotFound(
                f"model {name!r} has no loaded version {version!r} (loaded: {served})"
            )
        return loaded

    def peek(self, name: str, version: str | None = None) -> LoadedVersion:
        """Like `resolve`, but a request without a version gets the route's default version and
        the split does not advance (for metadata, readiness and counting refusals).

        Raises:
            ModelNotFound: the model is not served, or that version is not loaded.
        """
        if version:
            return self.resolve(name, version)
        table = self._table
        versions = table.versions.get(name)
        if versions is None:
            raise ModelNotFound(f"model {name!r} is not served here")
        return versions[table.routes[name].default]

    def shadow_for(self, name: str) -> LoadedVersion | None:
        """The version that gets copies of `name`'s routed requests, if its route has one."""
        table = self._table
        route = table.routes.get(name)
        if route is None or route.shadow is None:
            return None
        return table.versions[name].get(route.shadow)

    def observe(self, loaded: LoadedVersion, is_error: bool, duration_ms: float) -> None:
        """Feed one answer to the guard of its version; a breach takes the version out."""
        route = self._table.routes.get(loaded.name)
        if route is None:
            return
        watch = route.guards.get(loaded.version)
        if watch is None:
            return
        reason = watch.observe(is_error, duration_ms)
        if reason is None:
            return
        del route.guards[loaded.version]
        if route.picker is not None:
            route.picker.remove(loaded.version)
        log.warning(
            "route.guard_tripped",
            extra={"model": loaded.name, "version": loaded.version, "reason": reason},
        )
        if self._on_trip is not None:
            target = route.target_of(loaded.version)
            self._on_trip(Trip(loaded.name, target, loaded.version, reason))

    def failures(self, name: str) -> dict[str, str]:
        """Version -> why it failed to load, for model `name`."""
        return dict(self._table.failures.get(name, {}))

    def model_names(self) -> list[str]:
        """Served model names, sorted."""
        return sorted(self._table.versions)

    def version_names(self, name: str) -> tuple[str, ...]:
        """Loaded versions of `name`, ascending."""
        versions = self._table.versions.get(name)
        if versions is None:
            raise ModelNotFound(f"model {name!r} is not served here")
        return tuple(sorted(versions, key=int))

    def __iter__(self) -> Iterator[LoadedVersion]:
        for versions in self._table.versions.values():
            yield from versions.values()

    def __len__(self) -> int:
        return sum(len(v) for v in self._table.versions.values())

    def close(self) -> None:
        """Stop every batcher (each finishes what it has queued)."""
        for loaded in self:
            loaded.stop()


def _build_table(
    loaded: Sequence[LoadedVersion], refused: Mapping[tuple[str, int], str]
) -> RoutingTable:
    versions: dict[str, dict[str, LoadedVersion]] = {}
    for item in loaded:
        versions.setdefault(item.name, {})[item.version] = item
    routes: dict[str, ModelRoute] = {}
    for name, by_version in versions.items():
        aliased = [v for v, item in by_version.items() if DEFAULT_ALIAS in item.model.aliases]
        routes[name] = ModelRoute(default=aliased[0] if aliased else max(by_version, key=int))
    failures: dict[str, dict[str, str]] = {}
    for (name, number), reason in refused.items():
        failures.setdefault(name, {})[str(number)] = reason
    return RoutingTable(versions, routes, failures=failures)


def parse_model_ref(text: str) -> tuple[str, str | None]:
    """`NAME[@REF]` -> (name, ref or None)."""
    name, _, ref = text.partition("@")
    if not name:
        raise ModelNotFound(f"model reference {text!r} has no model name")
    return name, ref or None


def pick_default_version(source: ModelSource, name: str) -> ModelVersion:
    """A model's version to serve when none is named: its `production` alias, else the latest."""
    try:
        return source.get(name, DEFAULT_ALIAS)
    except NotFound:
        return source.get(name, "latest")


def select_versions(
    source: ModelCatalog, models: Sequence[str] | None, config: ServingConfig
) -> list[ModelVersion]:
    """The versions to load: the named refs, else the serve file's, else every registered model."""
    refs = list(models) if models else list(config.models)
    if not refs:
        refs = [model.name for model in source.list_models()]
    chosen: dict[tuple[str, int], ModelVersion] = {}
    for text in refs:
        name, ref = parse_model_ref(text)
        mv = source.get(name, ref) if ref else pick_default_version(source, name)
        chosen[(mv.name, mv.version)] = mv
    return list(chosen.values())
