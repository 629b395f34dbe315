"""API keys: created once and shown once, stored as a salted hash in the registry, revocable.

A key reads `maas_<id>_<secret>`: the id is public (it names the key in listings, logs and the
audit trail), the secret is 256 random bits. Only HMAC-SHA256(salt, secret) with a per-key random
salt is stored. A slow hash (scrypt, PBKDF2) protects guessable passwords; a 256-bit random secret
cannot be guessed, so a fast keyed hash keeps each request's check cheap.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from maas.actors import AnyActor, actor_name
from maas.errors import Conflict, InvalidInput, NotFound
from maas.registry import Registry, schema
from maas.registry.queries import as_utc, utcnow
from maas.security.acl import check_scope
from maas.security.ratelimit import RateLimit

log = logging.getLogger(__name__)

KEY_PREFIX = "maas"
ID_BYTES = 6  # 12 hex digits: enough to tell keys apart, not a secret
SECRET_BYTES = 32  # 256 bits
SALT_BYTES = 16
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_TOKEN_RE = re.compile(rf"{KEY_PREFIX}_([0-9a-f]{{{2 * ID_BYTES}}})_([A-Za-z0-9_-]{{20,128}})")


def hash_secret(salt: bytes, secret: str) -> str:
    """The stored form of a key's secret: HMAC-SHA256 keyed by the salt, hex."""
    return hmac.new(salt, secret.encode(), hashlib.sha256).hexdigest()


def parse_token(token: str) -> tuple[str, str] | None:
    """`(key id, secret)` of a token shaped like an API key, else None."""
    found = _TOKEN_RE.fullmatch(token)
    return (found.group(1), found.group(2)) if found else None


@dataclass(frozen=True)
class ApiKey:
    """One API key as stored (never its secret).

    Attributes:
        id: the public id inside the key.
        name: a label chosen at creation (`ci`, `web-frontend`).
        scopes: what the key may do (`infer:digits`, `read:*`, `admin`).
        rate_limit: its own request rate, or None for the server's default.
        created_at: when it was created (UTC).
        created_by: who created it.
        revoked_at: when it was revoked, or None while it is active.
        salt: hex salt of the stored hash.
        secret_hash: hex HMAC-SHA256(salt, secret).
    """

    id: str
    name: str
    scopes: tuple[str, ...]
    rate_limit: RateLimit | None
    created_at: datetime
    created_by: str | None
    revoked_at: datetime | None
    salt: str = field(repr=False)
    secret_hash: str = field(repr=False)

    @property
    def is_active(self) -> bool:
        """Whether the key has not been revoked."""
        return self.revoked_at is None

    def matches(self, secret: str) -> bool:
        """Whether `secret` is this key's secret (constant-time comparison)."""
        return hmac.compare_digest(hash_secret(bytes.fromhex(self.salt), secret), self.secret_hash)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready document without the hash (what `maas keys list --json` prints)."""
        return {
            "id": self.id,
            "name": self.name,
            "scopes": list(self.scopes),
            "rate_limit": str(self.rate_limit) if self.rate_limit else None,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
            "active": self.is_active,
        }


@dataclass(frozen=True)
class CreatedKey:
    """A new key: `token` is the full secret key, shown once and never stored."""

    key: ApiKey
    token: str = field(repr=False)


def _row_to_key(row: Any) -> ApiKey:
    limit = RateLimit(row.rate_per_s, row.burst) if row.rate_per_s is not None else None
    return ApiKey(
        id=row.id,
        name=row.name,
        scopes=tuple(row.scopes),
        rate_limit=limit,
        created_at=as_utc(row.created_at),
        created_by=row.created_by,
        revoked_at=as_utc(row.revoked_at) if row.revoked_at is not None else None,
        salt=row.salt,
        secret_hash=row.secret_hash,
    )


class KeyStore:
    """API keys in the registry's database; every create and revoke is audited there.

    Args:
        registry: the open registry whose database holds the keys.
    """

    def __init__(self, registry: Registry) -> None:
        self._registry = registry

    def create(
        self,
        name: str,
        scopes: Sequence[str],
        rate_limit: RateLimit | None = None,
        actor: AnyActor = None,
    ) -> CreatedKey:
        """Create a key; its full token is returned once and only its hash is stored.

        Raises:
            InvalidInput: a bad name or scope, or no scope at all.
            Conflict: an active key already has this name.
        """
        if not _NAME_RE.fullmatch(name):
            raise InvalidInput(
                f"invalid key name {name!r}: use letters, digits, '.', '_' or '-' (max 128)"
            )
        if not scopes:
            raise InvalidInput("a key needs at least one --scope (e.g. infer:NAME, read:*, admin)")
        for scope in scopes:
            check_scope(scope)
        key_id = secrets.token_hex(ID_BYTES)
        secret = secrets.token_urlsafe(SECRET_BYTES)
        salt = secrets.token_bytes(SALT_BYTES)
        values = {
            "id": key_id,
            "name": name,
            "salt": salt.hex(),
            "secret_hash": hash_secret(salt, secret),
            "scopes": sorted(set(scopes)),
            "rate_per_s": rate_limit.rate_per_s if rate_limit else None,
            "burst": rate_limit.burst if rate_limit else None,
            "created_at": utcnow(),
            "created_by": actor_name(actor),
            "revoked_at": None,
        }

        def insert(conn: sa.Connection) -> None:
            k = schema.api_keys
            clash = conn.execute(
                sa.select(k.c.id).where(k.c.name == name, k.c.revoked_at.is_(None))
            ).first()
            if clash is not None:
                raise Conflict(f'an active key is already named "{name}"; revoke it first')
            conn.execute(sa.insert(k).values(**values))

        self._registry.write_audited(actor, "key_create", f"key:{name} ({key_id})", insert)
        log.info("key.created", extra={"key_id": key_id, "key_name": name})
        token = f"{KEY_PREFIX}_{key_id}_{secret}"
        return CreatedKey(self.get(key_id), token)

    def get(self, key_id: str) -> ApiKey:
        """The key with this id (active or revoked).

        Raises:
            NotFound: no key has that id.
        """
        k = schema.api_keys
        row = self._registry.read_rows(
            lambda conn: conn.execute(sa.select(k).where(k.c.id == key_id)).one_or_none()
        )
        if row is None:
            raise NotFound(f"no API key with id {key_id}")
        return _row_to_key(row)

    def list(self, *, include_revoked: bool = True) -> list[ApiKey]:
        """Every key, oldest first (revoked ones too unless `include_revoked` is false)."""
        k = schema.api_keys
        query = sa.select(k).order_by(k.c.created_at, k.c.id)
        if not include_revoked:
            query = query.where(k.c.revoked_at.is_(None))
        rows = self._registry.read_rows(lambda conn: conn.execute(query).all())
        return [_row_to_key(row) for row in rows]

    def has_any(self) -> bool:
        """Whether a key was ever created (auth stays on even when all are revoked)."""
        k = schema.api_keys
        found = self._registry.read_rows(
            lambda conn: conn.execute(sa.select(k.c.id).limit(1)).first()
        )
        return found is not None

    def revoke(self, name_or_id: str, actor: AnyActor = None) -> ApiKey:
        """Revoke the active key with this name or id.

        Raises:
            NotFound: no active key has that name or id.
        """
        k = schema.api_keys

        def update(conn: sa.Connection) -> str:
            found = conn.execute(
                sa.select(k.c.id).where(
                    (k.c.name == name_or_id) | (k.c.id == name_or_id), k.c.revoked_at.is_(None)
                )
            ).scalar()
            if found is None:
                raise NotFound(f'no active API key is named or has the id "{name_or_id}"')
            conn.execute(sa.update(k).where(k.c.id == found).values(revoked_at=utcnow()))
            return str(found)

        key_id = self._registry.write_audited(actor, "key_revoke", f"key:{name_or_id}", update)
        log.info("key.revoked", extra={"key_id": key_id})
        return self.get(key_id)
