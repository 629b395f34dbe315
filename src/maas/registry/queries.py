"""The registry's SQL building blocks: lookups and inserts run inside a caller's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from maas.errors import ModelNotFound
from maas.registry import schema
from maas.registry.refs import LATEST, describe_versions
from maas.registry.versions import ModelVersion
from maas.signature import Signature


def utcnow() -> datetime:
    """Now, in UTC (every stored time is UTC)."""
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """`value` as an aware UTC datetime."""
    # SQLite hands back naive datetimes, PostgreSQL its session zone; everything we store is UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def record_alias_event(
    conn: sa.Connection,
    model_id: int,
    alias: str,
    old: int | None,
    new: int | None,
    actor: str | None,
) -> None:
    """Append one alias move to the history (None: created / removed)."""
    conn.execute(
        sa.insert(schema.alias_events).values(
            model_id=model_id,
            alias=alias,
            old_version=old,
            new_version=new,
            at=utcnow(),
            actor=actor,
        )
    )


def find_model_id(conn: sa.Connection, name: str, *, create: bool) -> int | None:
    """The id of model `name`, inserting the model first when `create` is set."""
    m = schema.models
    found: int | None = conn.execute(sa.select(m.c.id).where(m.c.name == name)).scalar()
    if found is not None or not create:
        return found
    new_id: int = conn.execute(
        sa.insert(m).values(name=name, last_version=0, created_at=utcnow()).returning(m.c.id)
    ).scalar_one()
    return new_id


def require_model(conn: sa.Connection, name: str) -> int:
    """The id of model `name`, or ModelNotFound listing the models that exist."""
    model_id = find_model_id(conn, name, create=False)
    if model_id is None:
        names = conn.execute(sa.select(schema.models.c.name).order_by(schema.models.c.name))
        known = ", ".join(names.scalars()) or "none"
        raise ModelNotFound(f'no model named "{name}"; models: {known}')
    return model_id


def require_version(conn: sa.Connection, model_id: int, name: str, version: int) -> Any:
    """The row of one version, or ModelNotFound listing the versions that exist."""
    v = schema.versions
    row = conn.execute(
        sa.select(v).where(v.c.model_id == model_id, v.c.version == version)
    ).one_or_none()
    if row is None:
        existing = version_numbers(conn, model_id)
        raise ModelNotFound(
            f'model "{name}" has no version {version}; versions: {describe_versions(existing)}'
        )
    return row


def resolve(conn: sa.Connection, model_id: int, name: str, ref: str | int) -> int:
    """The version number a normalized reference (number, "latest", alias) stands for."""
    if isinstance(ref, int):
        return ref
    if ref == LATEST:
        v = schema.versions
        latest = conn.execute(
            sa.select(sa.func.max(v.c.version)).where(v.c.model_id == model_id)
        ).scalar()
        if latest is None:
            raise ModelNotFound(f'model "{name}" has no versions left')
        return int(latest)
    a = schema.aliases
    number = conn.execute(
        sa.select(a.c.version).where(a.c.model_id == model_id, a.c.alias == ref)
    ).scalar()
    if number is None:
        have = sorted(aliases_of(conn, model_id))
        raise ModelNotFound(
            f'model "{name}" has no alias "{ref}"; aliases: {", ".join(have) or "none"}'
        )
    return int(number)


def version_numbers(conn: sa.Connection, model_id: int) -> list[int]:
    """Every existing version number of the model."""
    v = schema.versions
    return list(conn.execute(sa.select(v.c.version).where(v.c.model_id == model_id)).scalars())


def aliases_of(conn: sa.Connection, model_id: int) -> dict[str, int]:
    """The model's aliases: alias -> version number."""
    a = schema.aliases
    rows = conn.execute(sa.select(a.c.alias, a.c.version).where(a.c.model_id == model_id))
    return {str(alias): int(version) for alias, version in rows}


def aliases_by_version(conn: sa.Connection, model_id: int) -> dict[int, tuple[str, ...]]:
    """The model's aliases grouped by the version they point at, sorted."""
    grouped: dict[int, list[str]] = {}
    for alias, version in sorted(aliases_of(conn, model_id).items()):
        grouped.setdefault(version, []).append(alias)
    return {version: tuple(names) for version, names in grouped.items()}


def used_digests(conn: sa.Connection) -> set[str]:
    """Every digest some version still references (its artifact or an extra file)."""
    v = schema.versions
    used: set[str] = set()
    for digest, files in conn.execute(sa.select(v.c.digest, v.c.files)):
        used.add(digest)
        used.update(files.values())
    return used


def to_model_version(name: str, row: Any, aliases: Sequence[str]) -> ModelVersion:
    """A versions row as the immutable ModelVersion users see."""
    return ModelVersion(
        name=name,
        version=row.version,
        digest=row.digest,
        size_bytes=row.size_bytes,
        signature=Signature.from_dict(row.signature),
        labels=tuple(row.labels),
        metrics={str(k): float(val) for k, val in row.metrics.items()},
        lineage=dict(row.lineage),
        files=dict(row.files),
        created_at=as_utc(row.created_at),
        aliases=tuple(aliases),
    )
