"""Building the next routing table from a plan, the loaded versions and the table in force.

A target whose version could not be loaded keeps answering from the version it resolved to in
the table in force (a failed load never takes traffic away from a working version). A model's
`ModelRoute` object is carried over when nothing it was built from changed, so its split keeps
its position and its guards keep their windows across polls.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

from maas.serving.plan import ModelPlan
from maas.serving.repository import LoadedVersion, RoutingTable
from maas.serving.routing import GuardWatch, ModelRoute, WeightedPicker

VersionKey = tuple[str, int]


@dataclass(frozen=True)
class TableInputs:
    """Everything the next table is built from.

    Attributes:
        plans: model -> what the registry says now.
        loaded: every loaded (and warmed) version.
        old: the table in force.
        trips: (model, target) -> reason, guard trips this server has seen.
        failures: version -> why it failed to load.
    """

    plans: Mapping[str, ModelPlan]
    loaded: Mapping[VersionKey, LoadedVersion]
    old: RoutingTable
    trips: Mapping[tuple[str, str], str]
    failures: Mapping[VersionKey, str]


def build_table(inputs: TableInputs) -> RoutingTable:
    """The routing table for `inputs.plans`."""
    versions: dict[str, dict[str, LoadedVersion]] = {}
    routes: dict[str, ModelRoute] = {}
    aliases: dict[str, dict[str, str]] = {}
    failures: dict[str, dict[str, str]] = {}
    for name, plan in inputs.plans.items():
        here = _loaded_of(plan, inputs.loaded)
        route = _route_of(plan, here, inputs)
        problems = {
            str(number): reason
            for (model, number), reason in inputs.failures.items()
            if model == name and number in plan.versions
        }
        if problems:
            failures[name] = problems
        if route is None:
            continue
        versions[name] = here
        routes[name] = route
        aliases[name] = {a: str(n) for a, n in plan.aliases.items() if str(n) in here}
    return RoutingTable(versions, routes, aliases, failures)


def _loaded_of(
    plan: ModelPlan, loaded: Mapping[VersionKey, LoadedVersion]
) -> dict[str, LoadedVersion]:
    """The plan's loaded versions, with the registry's current facts (aliases move)."""
    here: dict[str, LoadedVersion] = {}
    for number, mv in plan.versions.items():
        item = loaded.get((plan.name, number))
        if item is None:
            continue
        if item.model != mv:
            item = dataclasses.replace(item, model=mv)
        here[str(number)] = item
    return here


class _Resolver:
    """Route targets -> loaded versions, falling back to what the table in force used."""

    def __init__(self, plan: ModelPlan, here: dict[str, LoadedVersion], old: RoutingTable) -> None:
        self._plan = plan
        self._here = here
        self._old_route = old.routes.get(plan.name)
        self._old_versions = old.versions.get(plan.name, {})

    def __call__(self, target: str) -> str | None:
        number = self._plan.resolve(target)
        if number is not None and str(number) in self._here:
            return str(number)
        route = self._old_route
        previous = route.targets.get(target) if route is not None else None
        if previous is not None and previous in self._old_versions:
            self._here.setdefault(previous, self._old_versions[previous])  # keeps serving it
            return previous
        return None


def _route_of(
    plan: ModelPlan, here: dict[str, LoadedVersion], inputs: TableInputs
) -> ModelRoute | None:
    resolve = _Resolver(plan, here, inputs.old)
    targets: dict[str, str] = {}
    weights: list[tuple[str, int]] = []
    shadow: str | None = None
    route = plan.route
    if route is not None:
        weights = _split_of(plan, resolve, targets, inputs.trips)
        shadow = resolve(route.shadow) if route.shadow is not None else None
    default = resolve(plan.default_ref)
    if default is None and here:
        default = max(here, key=int)
    if default is None:
        return None
    targets.setdefault(plan.default_ref, default)
    key = (
        tuple(weights),
        shadow,
        default,
        tuple(sorted(targets.items())),
        route.guard if route is not None else None,
        route.updated_at if route is not None else None,
    )
    old_route = inputs.old.routes.get(plan.name)
    if old_route is not None and old_route.key == key:
        return old_route
    guards: dict[str, GuardWatch] = {}
    if route is not None and route.guard is not None:
        primary = targets.get(route.primary)
        guards = {v: GuardWatch(route.guard) for v, _ in weights if v != primary}
    picker = WeightedPicker(weights) if weights else None
    return ModelRoute(default, picker, targets, guards, shadow, key)


def _split_of(
    plan: ModelPlan,
    resolve: _Resolver,
    targets: dict[str, str],
    trips: Mapping[tuple[str, str], str],
) -> list[tuple[str, int]]:
    """(version, weight) of the route's targets that resolve and are not tripped."""
    route = plan.route
    weights: list[tuple[str, int]] = []
    if route is None:
        return weights
    for target, weight in route.split:
        version = resolve(target)
        if version is None:
            continue
        targets[target] = version
        if target not in route.tripped and (plan.name, target) not in trips:
            weights.append((version, weight))
    return weights
