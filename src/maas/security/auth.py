"""Authentication: an `Authorization` header (or gRPC metadata value) -> the calling Principal.

Credentials are `Bearer <token>`: a maas API key (`maas_<id>_<secret>`), or, when JWT is set up,
a JSON Web Token checked against a local JWKS file, the issuer and the audience. Active keys are
cached in memory and reloaded from the registry by `refresh()`, which a server calls every poll
interval (`run_polling`), so a revoked key stops working within one interval.

Auth is on once any key was ever created in the registry, or JWT is configured; revoking every
key keeps it on (nothing opens up by accident). `no_auth` turns it off, with a warning.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from maas.errors import InvalidInput, Unauthenticated
from maas.security.acl import ANONYMOUS, Principal, check_scope
from maas.security.keys import ApiKey, KeyStore, parse_token

if TYPE_CHECKING:
    from maas.config import SecuritySettings
    from maas.registry import Registry

log = logging.getLogger(__name__)

BEARER = "bearer"
MAX_CREDENTIAL_CHARS = 8192  # longer than any key or sane JWT; refuse before parsing


@dataclass(frozen=True)
class JwtSettings:
    """How to check JSON Web Tokens.

    Attributes:
        jwks_file: a JWKS document (JSON) holding the identity provider's public keys.
        issuer: the required `iss` claim.
        audience: the required `aud` claim.
        algorithms: the accepted signing algorithms (never `none`).
    """

    jwks_file: Path
    issuer: str
    audience: str
    algorithms: tuple[str, ...] = ("RS256", "ES256", "EdDSA")


class JwtVerifier:
    """Checks JWTs offline against a JWKS file; scopes come from the `scope` or `scp` claim.

    Raises:
        InvalidInput: the JWKS file cannot be read or holds no usable key.
    """

    def __init__(self, settings: JwtSettings) -> None:
        import jwt

        self._settings = settings
        try:
            self._keys = jwt.PyJWKSet.from_json(Path(settings.jwks_file).read_text())
        except (OSError, ValueError, jwt.PyJWTError) as err:
            raise InvalidInput(f"cannot use the JWKS file {settings.jwks_file}: {err}") from err

    def verify(self, token: str) -> Principal:
        """The principal a valid token names.

        Raises:
            Unauthenticated: bad signature, unknown key, wrong issuer or audience, expired.
        """
        import jwt

        try:
            header = jwt.get_unverified_header(token)
            kid = header.get("kid")
            jwk = self._keys[kid] if kid is not None else self._only_key()
            claims: dict[str, Any] = jwt.decode(
                token,
                key=jwk.key,
                algorithms=list(self._settings.algorithms),
                audience=self._settings.audience,
                issuer=self._settings.issuer,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except (jwt.PyJWTError, KeyError) as err:
            raise Unauthenticated(f"invalid token: {err}") from err
        return Principal(
            name=str(claims["sub"]),
            kind="jwt",
            scopes=_claim_scopes(claims),
            key_id=str(kid) if kid is not None else None,
        )

    def _only_key(self) -> Any:
        if len(self._keys.keys) != 1:
            raise KeyError("the token names no key id (kid) and the JWKS holds several keys")
        return self._keys.keys[0]


def _claim_scopes(claims: dict[str, Any]) -> frozenset[str]:
    raw = claims.get("scope", claims.get("scp", ""))
    items = raw.split() if isinstance(raw, str) else [str(s) for s in raw]
    good: set[str] = set()
    for scope in items:
        try:
            check_scope(scope)
        except InvalidInput:
            continue  # the provider may issue scopes meant for other services
        good.add(scope)
    return frozenset(good)


def jwt_from_settings(security: SecuritySettings) -> JwtVerifier | None:
    """The JWT verifier the settings ask for, or None.

    Raises:
        InvalidInput: only part of issuer, audience and JWKS file is set.
    """
    parts = (security.jwt_jwks_file, security.jwt_issuer, security.jwt_audience)
    if all(p is None for p in parts):
        return None
    if security.jwt_jwks_file is None or not security.jwt_issuer or not security.jwt_audience:
        raise InvalidInput(
            "JWT needs all of MAAS_SECURITY_JWT_JWKS_FILE, MAAS_SECURITY_JWT_ISSUER and "
            "MAAS_SECURITY_JWT_AUDIENCE"
        )
    return JwtVerifier(
        JwtSettings(
            security.jwt_jwks_file,
            security.jwt_issuer,
            security.jwt_audience,
            tuple(security.jwt_algorithms),
        )
    )


def _bearer_token(credentials: str | None) -> str:
    if not credentials:
        raise Unauthenticated("missing credentials: send 'Authorization: Bearer <key>'")
    if len(credentials) > MAX_CREDENTIAL_CHARS:
        raise Unauthenticated("credentials too long")
    scheme, _, token = credentials.strip().partition(" ")
    if scheme.lower() != BEARER or not token.strip():
        raise Unauthenticated("malformed credentials: expected 'Bearer <key>'")
    return token.strip()


class Authenticator:
    """Turns credentials into a Principal, from cached API keys and optional JWT settings.

    Args:
        keys: where API keys live (the registry's KeyStore).
        jwt: a JWT verifier, or None.
        disabled: authentication off (`--no-auth`); every caller is the anonymous admin.
        poll_interval_s: how often `run_polling` reloads keys.
    """

    def __init__(
        self,
        keys: KeyStore,
        *,
        jwt: JwtVerifier | None = None,
        disabled: bool = False,
        poll_interval_s: float = 5.0,
    ) -> None:
        self._keys = keys
        self._jwt = jwt
        self._disabled = disabled
        self.poll_interval_s = poll_interval_s
        self._lock = threading.Lock()
        self._active: dict[str, ApiKey] = {}
        self._any_key = False
        if disabled:
            log.warning("auth.disabled", extra={"note": "authentication is OFF (--no-auth)"})
        self.refresh()

    @classmethod
    def from_settings(cls, registry: Registry, security: SecuritySettings) -> Authenticator:
        """The authenticator `security` describes, reading keys from `registry`."""
        return cls(
            KeyStore(registry),
            jwt=jwt_from_settings(security),
            disabled=security.no_auth,
            poll_interval_s=security.key_poll_interval_s,
        )

    @property
    def is_enabled(self) -> bool:
        """Whether credentials are required (a key exists or JWT is set up, and not disabled)."""
        return not self._disabled and (self._any_key or self._jwt is not None)

    def refresh(self) -> None:
        """Reload the active keys from the registry (revoked keys drop out)."""
        active = {key.id: key for key in self._keys.list(include_revoked=False)}
        any_key = bool(active) or self._keys.has_any()
        with self._lock:
            self._active = active
            self._any_key = any_key
        log.debug("auth.keys_refreshed", extra={"active_keys": len(active)})

    async def run_polling(self) -> None:
        """Refresh every `poll_interval_s` until cancelled (a server's background task)."""
        while True:
            await asyncio.sleep(self.poll_interval_s)
            try:
                await asyncio.to_thread(self.refresh)
            except Exception:  # a registry hiccup must not end polling; keep the last keys
                log.exception("auth.refresh_failed")

    def authenticate(self, credentials: str | None) -> Principal:
        """The principal behind an `Authorization` value (`Bearer <token>`).

        Args:
            credentials: the HTTP header or gRPC `authorization` metadata value (None: absent).

        Raises:
            Unauthenticated: missing, malformed, unknown, revoked or invalid credentials.
        """
        if not self.is_enabled:
            return ANONYMOUS
        token = _bearer_token(credentials)
        parsed = parse_token(token)
        if parsed is not None:
            return self._from_key(*parsed)
        if self._jwt is not None and token.count(".") == 2:
            return self._jwt.verify(token)
        raise Unauthenticated("invalid credentials: not a maas API key or an accepted token")

    def _from_key(self, key_id: str, secret: str) -> Principal:
        with self._lock:
            key = self._active.get(key_id)
        if key is None or not key.matches(secret):
            raise Unauthenticated(f"invalid or revoked API key (id {key_id})")
        return Principal(
            name=key.name,
            kind="key",
            scopes=frozenset(key.scopes),
            key_id=key.id,
            rate_limit=key.rate_limit,
        )


def describe(principal: Principal) -> str:
    """A short text for logs and the audit trail (`key:ci (a1b2c3)`), never a secret."""
    if principal.kind == "key" and principal.key_id:
        return f"key:{principal.name} ({principal.key_id})"
    return f"{principal.kind}:{principal.name}" if principal.kind == "jwt" else principal.name
