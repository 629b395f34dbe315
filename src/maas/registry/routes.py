"""Serving routes: where requests without a version go, kept in the registry next to aliases.

A route is a weighted split over targets (an alias such as `production`, or a version number),
an optional guard that takes a breaching target out of the split, and an optional shadow target
that gets copies of live requests. Servers read routes on every poll; a guard trip is written back
here (and to the audit trail) so every server and `maas models show` see it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from maas.actors import AnyActor, actor_name
from maas.errors import Conflict, InvalidInput
from maas.registry import queries, schema
from maas.registry.refs import check_name, normalize_ref

if TYPE_CHECKING:
    from maas.registry.store import Registry

MAX_TARGETS = 16  # a split over more targets than this is a mistake, not a rollout
DEFAULT_WINDOW_S = 60.0
DEFAULT_MIN_REQUESTS = 20  # fewer answers than this say nothing about an error rate or a p99


@dataclass(frozen=True)
class RouteGuard:
    """Limits a non-primary target of a split must keep, measured over a sliding window.

    Attributes:
        max_error_rate: largest share of failed answers (0..1); None: not checked.
        max_p99_ms: largest 99th percentile latency in milliseconds; None: not checked.
        window_s: the sliding window the measures cover.
        min_requests: answers needed in the window before the guard judges.
    """

    max_error_rate: float | None = None
    max_p99_ms: float | None = None
    window_s: float = DEFAULT_WINDOW_S
    min_requests: int = DEFAULT_MIN_REQUESTS

    def __post_init__(self) -> None:
        if self.max_error_rate is None and self.max_p99_ms is None:
            raise InvalidInput("a route guard needs --max-error-rate or --max-p99-ms")
        if self.max_error_rate is not None and not 0 <= self.max_error_rate <= 1:
            raise InvalidInput(f"max error rate must be in 0..1, got {self.max_error_rate}")
        if self.max_p99_ms is not None and not self.max_p99_ms > 0:
            raise InvalidInput(f"max p99 must be a positive number of ms, got {self.max_p99_ms}")
        if not 0 < self.window_s <= 86_400:
            raise InvalidInput(f"guard window must be in (0, 86400] s, got {self.window_s}")
        if self.min_requests < 1:
            raise InvalidInput(f"guard min requests must be at least 1, got {self.min_requests}")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready document."""
        return {
            "max_error_rate": self.max_error_rate,
            "max_p99_ms": self.max_p99_ms,
            "window_s": self.window_s,
            "min_requests": self.min_requests,
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> RouteGuard:
        """Parse `to_dict`'s form (unknown keys are refused)."""
        known = {"max_error_rate", "max_p99_ms", "window_s", "min_requests"}
        extra = set(doc) - known
        if extra:
            raise InvalidInput(f"unknown guard field(s): {', '.join(sorted(extra))}")
        return cls(
            max_error_rate=_optional_float(doc.get("max_error_rate")),
            max_p99_ms=_optional_float(doc.get("max_p99_ms")),
            window_s=float(doc.get("window_s", DEFAULT_WINDOW_S)),
            min_requests=int(doc.get("min_requests", DEFAULT_MIN_REQUESTS)),
        )


@dataclass(frozen=True)
class Route:
    """A model's default route.

    Attributes:
        name: the model.
        split: (target, weight) pairs; a target is an alias or a version number as text.
        guard: limits for the non-primary targets; None: unguarded.
        shadow: a target that gets a copy of every routed request (answers never returned).
        tripped: target -> why the guard took it out of the split.
        updated_at: when the route was last written.
        actor: who wrote it.
    """

    name: str
    split: tuple[tuple[str, int], ...]
    guard: RouteGuard | None = None
    shadow: str | None = None
    tripped: dict[str, str] = field(default_factory=dict)
    updated_at: datetime | None = None
    actor: str | None = None

    @property
    def primary(self) -> str:
        """The target with the largest weight (the first of equals): the guard never trips it."""
        best = max(weight for _, weight in self.split)
        return next(target for target, weight in self.split if weight == best)

    @property
    def targets(self) -> tuple[str, ...]:
        """Every target the route names (split and shadow)."""
        named = [target for target, _ in self.split]
        if self.shadow is not None and self.shadow not in named:
            named.append(self.shadow)
        return tuple(named)

    def describe(self) -> str:
        """`production=90 canary=10 (canary tripped: ...)`, the way the CLI prints it."""
        text = " ".join(f"{target}={weight}" for target, weight in self.split)
        if self.shadow:
            text += f" shadow={self.shadow}"
        for target, reason in sorted(self.tripped.items()):
            text += f" ({target} stopped by its guard: {reason})"
        return text

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready document."""
        return {
            "name": self.name,
            "split": dict(self.split),
            "guard": self.guard.to_dict() if self.guard else None,
            "shadow": self.shadow,
            "tripped": dict(self.tripped),
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
            "actor": self.actor,
        }


def parse_split(items: Sequence[str]) -> tuple[tuple[str, int], ...]:
    """`["production=90", "canary=10"]` -> (("production", 90), ("canary", 10)).

    A lone target without `=` gets weight 100 (`maas route digits production`).

    Raises:
        InvalidInput: a malformed item, a weight that is not a whole number, or a repeated target.
    """
    split: list[tuple[str, int]] = []
    for item in items:
        target, sep, weight_text = item.partition("=")
        weight = 100
        if sep:
            try:
                weight = int(weight_text)
            except ValueError:
                raise InvalidInput(f"weight in {item!r} is not a whole number") from None
        split.append((target.strip(), weight))
    return check_split(split)


def check_split(split: Sequence[tuple[str, int]]) -> tuple[tuple[str, int], ...]:
    """Validate (target, weight) pairs: 1..16 distinct targets, weights >= 0, one above 0."""
    if not split or len(split) > MAX_TARGETS:
        raise InvalidInput(f"a route needs 1 to {MAX_TARGETS} targets, got {len(split)}")
    seen: set[str] = set()
    for target, weight in split:
        check_target(target)
        if target in seen:
            raise InvalidInput(f"target {target!r} appears twice in the route")
        seen.add(target)
        if weight < 0:
            raise InvalidInput(f"weight of {target!r} must not be negative, got {weight}")
    if not any(weight > 0 for _, weight in split):
        raise InvalidInput("at least one target of a route needs a weight above 0")
    return tuple((target, int(weight)) for target, weight in split)


def check_target(target: str) -> str:
    """A route target is an alias or a version number ("latest" would move under the route)."""
    ref = normalize_ref(target)
    if ref == "latest":
        raise InvalidInput("a route target is an alias or a version number, not latest")
    return str(ref)


def get_route(registry: Registry, name: str) -> Route | None:
    """The route of model `name`, or None when it has none.

    Raises:
        ModelNotFound: no model has that name.
    """
    check_name(name)

    def read(conn: sa.Connection) -> Any:
        model_id = queries.require_model(conn, name)
        r = schema.routes
        return conn.execute(sa.select(r).where(r.c.model_id == model_id)).one_or_none()

    row = registry.read_rows(read)
    return None if row is None else _to_route(name, row)


def list_routes(registry: Registry) -> dict[str, Route]:
    """Every model's route, by model name (one query; what a server reads per poll)."""
    r, m = schema.routes, schema.models
    query = sa.select(m.c.name, r).join(m, m.c.id == r.c.model_id)
    rows = registry.read_rows(lambda conn: conn.execute(query).all())
    return {row.name: _to_route(row.name, row) for row in rows}


def set_route(
    registry: Registry,
    name: str,
    split: Sequence[tuple[str, int]],
    *,
    guard: RouteGuard | None = None,
    shadow: str | None = None,
    actor: AnyActor = None,
) -> Route:
    """Create or replace the route of `name` (clearing any guard trips); audited as `set_route`.

    Raises:
        ModelNotFound: no such model, or a target names no existing alias or version.
        InvalidInput: a malformed split, guard or shadow.
    """
    check_name(name)
    clean = check_split(split)
    if shadow is not None:
        check_target(shadow)
        if shadow in {target for target, _ in clean}:
            raise InvalidInput(f"shadow target {shadow!r} is also in the split")
    for target in [target for target, _ in clean] + ([shadow] if shadow else []):
        registry.get(name, target)  # every target must resolve now
    values = {
        "split": [[target, weight] for target, weight in clean],
        "guard": guard.to_dict() if guard else None,
        "shadow": shadow,
        "tripped": {},
        "updated_at": queries.utcnow(),
        "actor": actor_name(actor),
    }

    def write(conn: sa.Connection) -> None:
        model_id = queries.require_model(conn, name)
        r = schema.routes
        conn.execute(sa.delete(r).where(r.c.model_id == model_id))
        conn.execute(sa.insert(r).values(model_id=model_id, **values))

    registry.write_audited(actor, "set_route", f"{name}:{_split_text(clean)}", write)
    route = get_route(registry, name)
    if route is None:  # pragma: no cover - written just above
        raise Conflict(f"route of {name!r} vanished while it was written")
    return route


def clear_route(registry: Registry, name: str, actor: AnyActor = None) -> bool:
    """Remove the route of `name` (requests go to `production` again); audited. True if removed."""
    check_name(name)

    def delete(conn: sa.Connection) -> bool:
        model_id = queries.require_model(conn, name)
        r = schema.routes
        return bool(conn.execute(sa.delete(r).where(r.c.model_id == model_id)).rowcount)

    return registry.write_audited(actor, "clear_route", name, delete)


def trip_target(registry: Registry, name: str, target: str, reason: str, actor: AnyActor) -> None:
    """Record that the guard took `target` out of `name`'s split; audited as `route_guard`.

    The audit row's target carries the reason, so `maas audit` shows why.
    """

    def write(conn: sa.Connection) -> None:
        model_id = queries.require_model(conn, name)
        r = schema.routes
        row = conn.execute(sa.select(r).where(r.c.model_id == model_id)).one_or_none()
        if row is None:
            return
        tripped = dict(row.tripped or {})
        tripped[target] = reason
        conn.execute(sa.update(r).where(r.c.model_id == model_id).values(tripped=tripped))

    registry.write_audited(actor, "route_guard", f"{name}@{target}: {reason}"[:512], write)


def rollback_alias(
    registry: Registry, name: str, alias: str = "production", actor: AnyActor = None
) -> tuple[int, int]:
    """Point `alias` back at the version it pointed to before its last move.

    Returns:
        (from, to): the version the alias left and the one it points at now.

    Raises:
        ModelNotFound: no such model, or the earlier version was deleted.
        Conflict: the alias has no earlier version to go back to.
    """
    current = registry.get(name, alias).version
    history = [e for e in registry.alias_history(name, alias) if e.new_version is not None]
    if not history or history[-1].new_version != current or history[-1].old_version is None:
        raise Conflict(f"{name}@{alias} has no earlier version to roll back to")
    previous = history[-1].old_version
    registry.set_alias(name, alias, previous, actor=actor)
    registry.record_audit(actor, "rollback", f"{name}@{alias}", f"ok: {current}->{previous}")
    return current, previous


def _to_route(name: str, row: Any) -> Route:
    guard = RouteGuard.from_dict(row.guard) if row.guard else None
    return Route(
        name=name,
        split=tuple((str(target), int(weight)) for target, weight in row.split),
        guard=guard,
        shadow=row.shadow,
        tripped={str(k): str(v) for k, v in (row.tripped or {}).items()},
        updated_at=queries.as_utc(row.updated_at),
        actor=row.actor,
    )


def _split_text(split: Sequence[tuple[str, int]]) -> str:
    return ",".join(f"{target}={weight}" for target, weight in split)


def _optional_float(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    if math.isnan(number):
        raise InvalidInput("guard limits must be numbers")
    return number
