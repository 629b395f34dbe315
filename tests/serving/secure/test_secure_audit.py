"""Management calls over REST are audited with the caller's credential: its kind and key id."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm
from secure_helpers import Keys, Served, start_served, stop_served

from maas.config import SecuritySettings
from maas.registry.store import Registry
from maas.registry.versions import AuditEntry
from maas.security.guard import Guard
from maas.security.keys import parse_token
from maas.serving.protection import Protection

ISSUER = "https://id.example.test"
AUDIENCE = "maas"
SIGNING_KEY_ID = "idp-2026"


def audited(registry: Registry, action: str) -> list[AuditEntry]:
    return [e for e in registry.audit_log() if e.action == action]


async def move_production(url: str, authorization: str) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        moved = await client.put(
            "/v2/models/digits/aliases/production",
            json={"version": 1},
            headers={"Authorization": authorization},
        )
        loaded = await client.post(
            "/v2/repository/models/digits/load", headers={"Authorization": authorization}
        )
    assert moved.status_code == 200
    assert loaded.status_code == 200


async def test_an_api_key_is_audited_with_its_kind_and_id(
    secured: Served, keys: Keys, secure_registry: Registry
) -> None:
    parsed = parse_token(keys.tokens["admin"])
    assert parsed is not None
    key_id = parsed[0]
    await move_production(secured.http_url, keys.bearer("admin"))
    for action in ("set_alias", "repository_load"):
        (entry,) = audited(secure_registry, action)
        assert (entry.actor, entry.actor_kind, entry.actor_key_id) == ("admin", "key", key_id)
        assert entry.to_dict()["actor_key_id"] == key_id


async def test_a_jwt_is_audited_with_its_kind_and_signing_key_id(
    secure_registry: Registry, tmp_path: Path
) -> None:
    idp = ec.generate_private_key(ec.SECP256R1())
    jwk: dict[str, Any] = json.loads(ECAlgorithm.to_jwk(idp.public_key()))
    jwk.update(kid=SIGNING_KEY_ID, alg="ES256", use="sig")
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [jwk]}))
    settings = SecuritySettings(jwt_jwks_file=jwks, jwt_issuer=ISSUER, jwt_audience=AUDIENCE)
    served = await start_served(
        secure_registry, Protection(guard=Guard.from_settings(secure_registry, settings))
    )
    claims: dict[str, Any] = {"iss": ISSUER, "aud": AUDIENCE, "sub": "release-bot"}
    claims.update(scope="admin", exp=int(time.time()) + 600)
    token = jwt.encode(claims, idp, algorithm="ES256", headers={"kid": SIGNING_KEY_ID})
    try:
        await move_production(served.http_url, f"Bearer {token}")
    finally:
        await stop_served(served)
    for action in ("set_alias", "repository_load"):
        (entry,) = audited(secure_registry, action)
        assert (entry.actor, entry.actor_kind, entry.actor_key_id) == (
            "release-bot",
            "jwt",
            SIGNING_KEY_ID,
        )
