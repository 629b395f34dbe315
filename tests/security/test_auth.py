"""Authentication: API keys from the registry (with revocation by polling) and JWTs from a JWKS."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from maas.config import SecuritySettings
from maas.errors import InvalidInput, PermissionDenied, Unauthenticated
from maas.registry import Registry
from maas.security.acl import ANONYMOUS, Action, authorize
from maas.security.auth import Authenticator, JwtSettings, JwtVerifier, describe
from maas.security.keys import KeyStore
from maas.security.ratelimit import RateLimit


def test_auth_is_off_until_a_key_exists(registry: Registry) -> None:
    auth = Authenticator(KeyStore(registry))
    assert not auth.is_enabled
    assert auth.authenticate(None) is ANONYMOUS
    KeyStore(registry).create("ci", ["infer:digits"])
    auth.refresh()
    assert auth.is_enabled
    with pytest.raises(Unauthenticated, match="missing credentials"):
        auth.authenticate(None)


def test_a_key_authenticates_with_its_scopes(registry: Registry) -> None:
    created = KeyStore(registry).create("ci", ["infer:digits"], RateLimit(50))
    auth = Authenticator(KeyStore(registry))
    who = auth.authenticate(f"Bearer {created.token}")
    assert (who.name, who.kind, who.key_id) == ("ci", "key", created.key.id)
    assert who.scopes == frozenset({"infer:digits"})
    assert who.rate_limit == RateLimit(50)
    assert describe(who) == f"key:ci ({created.key.id})"
    authorize(who, Action.INFER, "digits")
    with pytest.raises(PermissionDenied):
        authorize(who, Action.INFER, "iris")
    assert auth.authenticate(f"bearer   {created.token}  ").key_id == created.key.id


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("Basic dXNlcjpwYXNz", "malformed credentials"),
        ("Bearer", "malformed credentials"),
        ("Bearer not-a-key", "invalid credentials"),
        ("Bearer maas_0123456789ab_" + "A" * 43, "invalid or revoked API key"),
        ("Bearer " + "x" * 9000, "too long"),
    ],
)
def test_bad_credentials_are_refused(registry: Registry, header: str, message: str) -> None:
    KeyStore(registry).create("ci", ["admin"])
    with pytest.raises(Unauthenticated, match=message):
        Authenticator(KeyStore(registry)).authenticate(header)


def test_a_wrong_secret_for_a_real_id_is_refused(registry: Registry) -> None:
    created = KeyStore(registry).create("ci", ["admin"])
    forged = created.token[:-4] + ("AAAA" if not created.token.endswith("AAAA") else "BBBB")
    with pytest.raises(Unauthenticated, match="invalid or revoked"):
        Authenticator(KeyStore(registry)).authenticate(f"Bearer {forged}")


def test_a_revoked_key_stops_working_at_the_next_refresh(
    registry: Registry, registry_url: str, artifacts_dir: Path
) -> None:
    created = KeyStore(registry).create("ci", ["infer:digits"])
    server_side = Authenticator(KeyStore(registry))
    assert server_side.authenticate(f"Bearer {created.token}").name == "ci"
    # The revocation comes from another process's registry connection, as `maas keys revoke`.
    with Registry(registry_url, artifacts_dir, source="cli") as other:
        KeyStore(other).revoke("ci", actor="bob")
    server_side.refresh()  # what the poller does every interval
    with pytest.raises(Unauthenticated, match="invalid or revoked"):
        server_side.authenticate(f"Bearer {created.token}")
    assert server_side.is_enabled  # revoking the last key does not open the server


async def test_polling_picks_up_new_keys(registry: Registry) -> None:
    import asyncio

    auth = Authenticator(KeyStore(registry), poll_interval_s=0.01)
    task = asyncio.create_task(auth.run_polling())
    try:
        created = KeyStore(registry).create("ci", ["admin"])
        for _ in range(500):  # wait for a poll, not for a time
            if auth.is_enabled:
                break
            await asyncio.sleep(0.01)
        assert auth.authenticate(f"Bearer {created.token}").name == "ci"
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def test_no_auth_lets_everyone_in_and_warns(
    registry: Registry, caplog: pytest.LogCaptureFixture
) -> None:
    KeyStore(registry).create("ci", ["infer:digits"])
    settings = SecuritySettings(no_auth=True)
    with caplog.at_level("WARNING", logger="maas.security.auth"):
        auth = Authenticator.from_settings(registry, settings)
    assert not auth.is_enabled
    assert auth.authenticate(None) is ANONYMOUS
    assert [r.getMessage() for r in caplog.records] == ["auth.disabled"]


# -- JWT --------------------------------------------------------------------------------------

ISSUER = "https://id.example.test"
AUDIENCE = "maas"


def write_jwks(path: Path, keys: dict[str, ec.EllipticCurvePrivateKey]) -> Path:
    docs = []
    for kid, key in keys.items():
        doc: dict[str, Any] = json.loads(ECAlgorithm.to_jwk(key.public_key()))
        doc.update(kid=kid, alg="ES256", use="sig")
        docs.append(doc)
    path.write_text(json.dumps({"keys": docs}))
    return path


def make_token(key: ec.EllipticCurvePrivateKey, kid: str, **claims: Any) -> str:
    body = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "svc-web",
        "exp": int(time.time()) + 600,
        "scope": "infer:digits read:* openid",
    }
    body.update(claims)
    return jwt.encode(body, key, algorithm="ES256", headers={"kid": kid})


@pytest.fixture
def idp_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def jwt_auth(
    registry: Registry, tmp_path: Path, idp_key: ec.EllipticCurvePrivateKey
) -> Authenticator:
    jwks = write_jwks(tmp_path / "jwks.json", {"k1": idp_key})
    settings = SecuritySettings(jwt_jwks_file=jwks, jwt_issuer=ISSUER, jwt_audience=AUDIENCE)
    return Authenticator.from_settings(registry, settings)


def test_a_valid_jwt_authenticates(
    jwt_auth: Authenticator, idp_key: ec.EllipticCurvePrivateKey
) -> None:
    assert jwt_auth.is_enabled  # JWT alone turns auth on
    who = jwt_auth.authenticate(f"Bearer {make_token(idp_key, 'k1')}")
    assert (who.name, who.kind, who.key_id) == ("svc-web", "jwt", "k1")  # the signing key
    assert who.scopes == frozenset({"infer:digits", "read:*"})  # foreign scopes are dropped
    assert who.limit_key == "jwt:svc-web"  # rate limits count per subject, not per IdP key


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        ({"aud": "other"}, "Audience"),
        ({"iss": "https://evil.test"}, "issuer"),
        ({"exp": int(time.time()) - 60}, "expired"),
    ],
)
def test_bad_jwts_are_refused(
    jwt_auth: Authenticator,
    idp_key: ec.EllipticCurvePrivateKey,
    claims: dict[str, Any],
    message: str,
) -> None:
    with pytest.raises(Unauthenticated, match=message):
        jwt_auth.authenticate(f"Bearer {make_token(idp_key, 'k1', **claims)}")


def test_a_jwt_signed_by_another_key_is_refused(jwt_auth: Authenticator) -> None:
    stranger = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(Unauthenticated, match="invalid token"):
        jwt_auth.authenticate(f"Bearer {make_token(stranger, 'k1')}")
    with pytest.raises(Unauthenticated, match="invalid token"):
        jwt_auth.authenticate(f"Bearer {make_token(stranger, 'unknown-kid')}")


def test_an_unsigned_jwt_is_refused(jwt_auth: Authenticator) -> None:
    token = jwt.encode(
        {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": "x",
            "exp": int(time.time()) + 60,
            "scope": "admin",
        },
        key=None,
        algorithm="none",
        headers={"kid": "k1"},
    )
    with pytest.raises(Unauthenticated, match="invalid token"):
        jwt_auth.authenticate(f"Bearer {token}")


def test_jwt_settings_must_be_complete(registry: Registry, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="JWT needs all of"):
        Authenticator.from_settings(registry, SecuritySettings(jwt_issuer=ISSUER))
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(InvalidInput, match="cannot use the JWKS file"):
        JwtVerifier(JwtSettings(tmp_path / "bad.json", ISSUER, AUDIENCE))
