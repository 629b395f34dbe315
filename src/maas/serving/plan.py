"""What a server should have loaded, read from the registry: versions, aliases and routes per model.

`read_plan` runs on a worker thread (the registry is blocking I/O) once per poll; the manager
compares its answer with what is loaded and loads, swaps and unloads the difference.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from maas.serving.options import ServingConfig, VersionPolicy
from maas.serving.repository import DEFAULT_ALIAS, parse_model_ref

if TYPE_CHECKING:
    from maas.registry.routes import Route
    from maas.registry.store import Registry
    from maas.registry.versions import ModelVersion

LATEST = "latest"


@dataclass(frozen=True)
class ModelPlan:
    """One model as the registry describes it now.

    Attributes:
        name: the model.
        versions: number -> version, every version the server should keep loaded.
        aliases: alias -> version number (all of the model's aliases).
        route: its route from the registry, if any.
        default_ref: what answers requests without a version when there is no route: the
            served reference (`NAME@REF`), else `production` if it exists, else `latest`.
    """

    name: str
    versions: dict[int, ModelVersion]
    aliases: dict[str, int]
    route: Route | None
    default_ref: str

    def resolve(self, target: str) -> int | None:
        """The version number a target (number, alias or `latest`) names now, if any."""
        if target.isdigit():
            return int(target)
        if target == LATEST:
            return max(self.versions) if self.versions else None
        return self.aliases.get(target)


@dataclass(frozen=True)
class ServedModels:
    """Which models a server serves.

    Attributes:
        refs: model -> references given on the command line or in the serve file; None: every
            registered model.
        added: models loaded through the management API (besides `refs`).
        removed: models unloaded through the management API.
    """

    refs: Mapping[str, tuple[str, ...]] | None
    added: frozenset[str] = frozenset()
    removed: frozenset[str] = frozenset()

    @classmethod
    def from_refs(cls, texts: Sequence[str]) -> ServedModels:
        """`NAME[@REF]` texts (empty: every registered model)."""
        if not texts:
            return cls(None)
        refs: dict[str, tuple[str, ...]] = {}
        for text in texts:
            name, ref = parse_model_ref(text)
            refs[name] = (*refs.get(name, ()), *((ref,) if ref else ()))
        return cls(refs)

    def names(self, registered: Iterable[str]) -> set[str]:
        """The model names to serve, given those registered."""
        wanted = set(registered) if self.refs is None else set(self.refs)
        return (wanted | self.added) - self.removed


def read_plan(
    registry: Registry, served: ServedModels, config: ServingConfig
) -> dict[str, ModelPlan]:
    """Ask the registry what every served model should have loaded (blocking I/O)."""
    from maas.registry.routes import list_routes

    summaries = {s.name: s for s in registry.list_models()}
    routes = list_routes(registry)
    plans: dict[str, ModelPlan] = {}
    for name in sorted(served.names(summaries)):
        summary = summaries.get(name)
        if summary is None:
            continue  # no version registered (yet)
        versions = {mv.version: mv for mv in registry.list_versions(name)}
        refs = served.refs.get(name, ()) if served.refs is not None else ()
        plans[name] = _plan_model(
            name, versions, dict(summary.aliases), routes.get(name), refs, config
        )
    return plans


def _plan_model(
    name: str,
    versions: dict[int, ModelVersion],
    aliases: dict[str, int],
    route: Route | None,
    refs: tuple[str, ...],
    config: ServingConfig,
) -> ModelPlan:
    policy = config.version_policy_for(name)
    pins = tuple(int(ref) for ref in refs if ref.isdigit())
    if pins and name not in config.version_policies:
        policy = VersionPolicy(latest=0, specific=pins)  # NAME@N serves N, not also the newest
    default_ref = refs[0] if refs else (DEFAULT_ALIAS if DEFAULT_ALIAS in aliases else LATEST)
    plan = ModelPlan(name, versions, aliases, route, default_ref)
    keep = policy.choose(list(versions)) | set(aliases.values())
    named = [*refs, *(route.targets if route is not None else ())]
    for target in named:
        number = plan.resolve(target)
        if number is not None:
            keep.add(number)
    chosen = {number: versions[number] for number in sorted(keep) if number in versions}
    return ModelPlan(name, chosen, aliases, route, default_ref)
