"""API keys in the registry: shown once, stored hashed, listed, revoked, audited."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from maas.errors import Conflict, InvalidInput, NotFound
from maas.registry import Registry, schema
from maas.security.keys import KeyStore, parse_token
from maas.security.ratelimit import RateLimit


def stored_rows(registry: Registry) -> list[dict[str, object]]:
    rows = registry.read_rows(lambda c: c.execute(sa.select(schema.api_keys)).mappings().all())
    return [dict(r) for r in rows]


def test_create_shows_the_key_once_and_stores_only_a_hash(registry: Registry) -> None:
    created = KeyStore(registry).create(
        "ci", ["infer:digits", "read:*"], RateLimit(50, 100), actor="alice"
    )
    parsed = parse_token(created.token)
    assert parsed is not None
    key_id, secret = parsed
    assert key_id == created.key.id
    assert created.token == f"maas_{key_id}_{secret}"
    assert created.key.scopes == ("infer:digits", "read:*")
    assert created.key.rate_limit == RateLimit(50, 100)
    assert created.key.created_by == "alice"
    (row,) = stored_rows(registry)
    assert secret not in repr(row)  # neither the secret nor the token is stored
    assert len(str(row["secret_hash"])) == 64
    assert created.key.matches(secret)
    assert not created.key.matches(secret[:-1] + ("A" if secret[-1] != "A" else "B"))


def test_two_keys_get_different_salts_and_ids(registry: Registry) -> None:
    store = KeyStore(registry)
    a = store.create("a", ["admin"])
    b = store.create("b", ["admin"])
    assert a.key.id != b.key.id
    assert a.key.salt != b.key.salt
    assert a.token != b.token


def test_list_and_revoke_by_name_or_id(registry: Registry) -> None:
    store = KeyStore(registry)
    ci = store.create("ci", ["infer:digits"])
    web = store.create("web", ["read:*"])
    assert [k.name for k in store.list()] == ["ci", "web"]
    revoked = store.revoke("ci", actor="bob")
    assert revoked.id == ci.key.id
    assert revoked.revoked_at is not None
    assert not revoked.is_active
    store.revoke(web.key.id)
    assert [k.name for k in store.list(include_revoked=False)] == []
    assert [k.is_active for k in store.list()] == [False, False]
    assert store.has_any()
    with pytest.raises(NotFound, match='no active API key is named or has the id "ci"'):
        store.revoke("ci")


def test_a_revoked_name_can_be_reused_but_not_an_active_one(registry: Registry) -> None:
    store = KeyStore(registry)
    store.create("ci", ["admin"])
    with pytest.raises(Conflict, match='already named "ci"'):
        store.create("ci", ["admin"])
    store.revoke("ci")
    again = store.create("ci", ["read:*"])
    assert again.key.scopes == ("read:*",)


@pytest.mark.parametrize(
    ("name", "scopes", "message"),
    [
        ("ci", [], "at least one --scope"),
        ("ci", ["write:x"], "invalid scope"),
        ("bad name", ["admin"], "invalid key name"),
        ("", ["admin"], "invalid key name"),
    ],
)
def test_bad_keys_are_refused(
    registry: Registry, name: str, scopes: list[str], message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        KeyStore(registry).create(name, scopes)
    assert stored_rows(registry) == []


def test_create_and_revoke_are_audited(registry: Registry) -> None:
    store = KeyStore(registry)
    created = store.create("ci", ["admin"], actor="alice")
    store.revoke("ci", actor="bob")
    with pytest.raises(NotFound):
        store.revoke("ci", actor="mallory")
    entries = [(e.actor, e.action, e.target, e.outcome, e.source) for e in registry.audit_log()]
    assert entries == [
        ("alice", "key_create", f"key:ci ({created.key.id})", "ok", "test"),
        ("bob", "key_revoke", "key:ci", "ok", "test"),
        ("mallory", "key_revoke", "key:ci", "not_found", "test"),
    ]


@pytest.mark.parametrize(
    "token",
    [
        "",
        "maas_",
        "maas_abc_def",
        "Bearer maas_0123456789ab_" + "x" * 43,
        "sk_0123456789ab_" + "y" * 43,
    ],
)
def test_parse_token_refuses_other_shapes(token: str) -> None:
    assert parse_token(token) is None
