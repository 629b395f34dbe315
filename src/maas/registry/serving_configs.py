"""Serving configurations tuned with a version (`maas tune`), one per hardware profile.

A configuration is a JSON document holding the batching fields a server applies
(`max_batch_size`, `max_queue_delay_us`, `instances`, ...) and the evidence they were chosen on
(the p99 budget, the estimated p99, the throughput). It belongs to one version on one hardware
profile (`CPU model/cores`): figures measured on one machine do not carry over to another.
Setting one again replaces it; deleting the version deletes its configurations.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from maas.actors import AnyActor, actor_name
from maas.errors import InvalidInput
from maas.registry import queries, schema
from maas.registry.refs import check_name

if TYPE_CHECKING:
    from maas.registry.store import Registry

MAX_PROFILE_CHARS = 256  # the column's width


@dataclass(frozen=True)
class StoredServingConfig:
    """A tuned configuration as stored.

    Attributes:
        name: the model.
        version: its version number.
        hardware_profile: the machine it was measured on (`CPU model/cores`).
        config: batching fields and tuning evidence.
        created_at: when it was stored (UTC).
        actor: who stored it.
    """

    name: str
    version: int
    hardware_profile: str
    config: dict[str, Any]
    created_at: datetime
    actor: str | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "name": self.name,
            "version": self.version,
            "hardware_profile": self.hardware_profile,
            "config": dict(self.config),
            "created_at": self.created_at.isoformat(),
            "actor": self.actor,
        }


def set_serving_config(
    registry: Registry,
    name: str,
    version: int,
    profile: str,
    config: Mapping[str, Any],
    actor: AnyActor = None,
) -> StoredServingConfig:
    """Store (or replace) the configuration of `name@version` for `profile`; audited.

    Raises:
        ModelNotFound: no such model or version.
        InvalidInput: an empty or over-long profile, or a configuration that is not JSON.
    """
    check_name(name)
    if not profile or len(profile) > MAX_PROFILE_CHARS:
        raise InvalidInput(f"a hardware profile has 1 to {MAX_PROFILE_CHARS} characters")
    doc = _json_object(config)
    now = queries.utcnow()

    def write(conn: sa.Connection) -> None:
        model_id = queries.require_model(conn, name)
        row = queries.require_version(conn, model_id, name, version)
        t = schema.serving_configs
        conn.execute(sa.delete(t).where(t.c.version_id == row.id, t.c.hardware_profile == profile))
        conn.execute(
            sa.insert(t).values(
                version_id=row.id,
                hardware_profile=profile,
                config=doc,
                created_at=now,
                actor=actor_name(actor),
            )
        )

    registry.write_audited(actor, "set_serving_config", f"{name}@{version}:{profile}", write)
    return StoredServingConfig(name, version, profile, doc, now, actor_name(actor))


def get_serving_config(
    registry: Registry, name: str, version: int, profile: str
) -> StoredServingConfig | None:
    """The configuration of `name@version` for `profile`, or None when none was stored.

    Raises:
        ModelNotFound: no such model or version.
    """
    found = [
        c for c in list_serving_configs(registry, name, version) if c.hardware_profile == profile
    ]
    return found[0] if found else None


def list_serving_configs(registry: Registry, name: str, version: int) -> list[StoredServingConfig]:
    """Every stored configuration of `name@version`, by hardware profile.

    Raises:
        ModelNotFound: no such model or version.
    """
    check_name(name)

    def read(conn: sa.Connection) -> list[Any]:
        model_id = queries.require_model(conn, name)
        row = queries.require_version(conn, model_id, name, version)
        t = schema.serving_configs
        query = sa.select(t).where(t.c.version_id == row.id).order_by(t.c.hardware_profile)
        return list(conn.execute(query).all())

    return [
        StoredServingConfig(
            name,
            version,
            row.hardware_profile,
            dict(row.config),
            queries.as_utc(row.created_at),
            row.actor,
        )
        for row in registry.read_rows(read)
    ]


def _json_object(config: Mapping[str, Any]) -> dict[str, Any]:
    """A plain JSON copy of `config` (what the database will give back)."""
    try:
        doc: dict[str, Any] = json.loads(json.dumps(dict(config), allow_nan=False))
    except (TypeError, ValueError) as err:
        raise InvalidInput(f"a serving configuration must be JSON: {err}") from err
    return doc
