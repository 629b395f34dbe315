"""The registry's tables as SQLAlchemy Core objects, used by queries (migrations create them).

Kept in step with `migrations/versions/`: a change here needs a new migration there.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

models = sa.Table(
    "models",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(128), nullable=False, unique=True),
    # The highest number ever given out; numbers of deleted versions are never reused.
    sa.Column("last_version", sa.Integer, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

versions = sa.Table(
    "versions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("model_id", sa.Integer, sa.ForeignKey("models.id"), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("size_bytes", sa.BigInteger, nullable=False),
    sa.Column("signature", sa.JSON, nullable=False),
    sa.Column("labels", sa.JSON, nullable=False),
    sa.Column("metrics", sa.JSON, nullable=False),
    sa.Column("lineage", sa.JSON, nullable=False),
    sa.Column("files", sa.JSON, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("model_id", "version", name="uq_versions_model_version"),
)

aliases = sa.Table(
    "aliases",
    metadata,
    sa.Column("model_id", sa.Integer, sa.ForeignKey("models.id"), primary_key=True),
    sa.Column("alias", sa.String(128), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
)

alias_events = sa.Table(
    "alias_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("model_id", sa.Integer, sa.ForeignKey("models.id"), nullable=False),
    sa.Column("alias", sa.String(128), nullable=False),
    sa.Column("old_version", sa.Integer, nullable=True),  # None: the alias was created
    sa.Column("new_version", sa.Integer, nullable=True),  # None: the alias was removed
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("actor", sa.String(256), nullable=True),
)

audit = sa.Table(
    "audit",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("actor", sa.String(256), nullable=True),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("target", sa.String(512), nullable=False),
    sa.Column("outcome", sa.String(64), nullable=False),
    sa.Column("source", sa.String(64), nullable=False),
    sa.Column("actor_kind", sa.String(32), nullable=True),  # migration 0005
    sa.Column("actor_key_id", sa.String(128), nullable=True),  # migration 0005
)

sa.Index("ix_versions_digest", versions.c.digest)
sa.Index("ix_alias_events_model_alias", alias_events.c.model_id, alias_events.c.alias)

# -- security (migration 0002) -----------------------------------------------------------------

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),  # the public part of the key
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("salt", sa.String(64), nullable=False),  # hex
    sa.Column("secret_hash", sa.String(128), nullable=False),  # hex HMAC-SHA256(salt, secret)
    sa.Column("scopes", sa.JSON, nullable=False),
    sa.Column("rate_per_s", sa.Float, nullable=True),  # None: the server's default limit
    sa.Column("burst", sa.Integer, nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("created_by", sa.String(256), nullable=True),
    sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
)

signatures = sa.Table(
    "signatures",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("version_id", sa.Integer, sa.ForeignKey("versions.id"), nullable=False),
    sa.Column("bundle", sa.Text, nullable=False),  # OpenSSF model-signing bundle (JSON)
    sa.Column("key_id", sa.String(64), nullable=False),  # sha256 of the public key (DER), hex
    sa.Column("signed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("actor", sa.String(256), nullable=True),
)

sa.Index("ix_api_keys_name", api_keys.c.name)
sa.Index("ix_signatures_version", signatures.c.version_id)

# -- serving routes (migration 0003) -----------------------------------------------------------

routes = sa.Table(
    "routes",
    metadata,
    sa.Column("model_id", sa.Integer, sa.ForeignKey("models.id"), primary_key=True),
    sa.Column("split", sa.JSON, nullable=False),  # [[target, weight], ...]; target: alias or N
    sa.Column("guard", sa.JSON, nullable=True),  # RouteGuard fields; None: unguarded
    sa.Column("shadow", sa.String(128), nullable=True),  # target that gets copies of requests
    sa.Column("tripped", sa.JSON, nullable=False),  # target -> why its guard took it out
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("actor", sa.String(256), nullable=True),
)

# -- tuned serving configurations (migration 0004) ---------------------------------------------

serving_configs = sa.Table(
    "serving_configs",
    metadata,
    # A deleted version takes its configurations with it.
    sa.Column(
        "version_id",
        sa.Integer,
        sa.ForeignKey("versions.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("hardware_profile", sa.String(256), primary_key=True),  # `CPU model/cores`
    sa.Column("config", sa.JSON, nullable=False),  # batching fields and the tuning evidence
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("actor", sa.String(256), nullable=True),
)
