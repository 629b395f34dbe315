"""`maas keys`, `maas audit`, `maas sign` and `maas registry` as a user runs them."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
from certificates import write_ec_keypair
from cli_helpers import run_cli
from onnx_models import build_classifier

from maas.actors import Actor
from maas.cli.registry import current_actor
from maas.config import load_settings
from maas.registry import Registry


@pytest.fixture
def registered(maas_home: Path) -> Path:
    """Two versions of "digits" in the MAAS_HOME registry; returns the artifacts folder."""
    model = build_classifier(seed=3)
    with Registry.from_settings(load_settings()) as registry:
        for extra in (b"", b"\0"):
            registry.register("digits", model.model_bytes + extra, signature=model.signature)
    return maas_home / "artifacts"


def artifact_files(artifacts_dir: Path) -> list[Path]:
    return sorted((artifacts_dir / "sha256").glob("??/[0-9a-f]*"))


@pytest.mark.parametrize("command", ["keys", "audit", "sign", "registry"])
def test_commands_are_listed_and_have_help(
    capsys: pytest.CaptureFixture[str], maas_home: Path, command: str
) -> None:
    listing = run_cli(capsys, "--help")
    assert listing.code == 0
    assert f"  {command} " in listing.out
    result = run_cli(capsys, command, "--help")
    assert result.code == 0
    assert "Usage: maas " + command in result.out


def test_keys_create_list_revoke(capsys: pytest.CaptureFixture[str], maas_home: Path) -> None:
    created = run_cli(
        capsys, "keys", "create", "--name", "ci", "--scope", "infer:digits", "--scope", "read:*",
        "--rate-limit", "50/s", "--json",
    )  # fmt: skip
    assert created.code == 0, created.err
    doc = created.json()
    assert doc["name"] == "ci"
    assert doc["scopes"] == ["infer:digits", "read:*"]
    assert doc["rate_limit"] == "50/s"
    assert doc["key"].startswith(f"maas_{doc['id']}_")
    listed = run_cli(capsys, "keys", "list", "--json")
    assert listed.code == 0
    (row,) = listed.json()
    assert row["id"] == doc["id"]
    assert row["active"] is True
    assert doc["key"] not in listed.out  # the key is shown once, at creation only
    text = run_cli(capsys, "keys", "create", "--name", "web", "--scope", "admin")
    assert text.code == 0
    lines = text.out.splitlines()
    assert lines[0].startswith("created key web (id ")
    assert lines[-1].startswith("maas_")
    table = run_cli(capsys, "keys", "list")
    assert "ci" in table.out
    assert "web" in table.out
    assert lines[-1] not in table.out
    revoked = run_cli(capsys, "keys", "revoke", "ci")
    assert revoked.code == 0
    assert revoked.out.strip() == f"revoked key ci (id {doc['id']})"
    active = run_cli(capsys, "keys", "list", "--active", "--json").json()
    assert [k["name"] for k in active] == ["web"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["create", "--name", "ci", "--scope", "write:all"], "invalid scope 'write:all'"),
        (["create", "--name", "ci", "--scope", "admin", "--rate-limit", "lots"], "invalid rate"),
        (["revoke", "nobody"], 'no active API key is named or has the id "nobody"'),
    ],
)
def test_keys_errors_are_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], maas_home: Path, args: list[str], message: str
) -> None:
    result = run_cli(capsys, "keys", *args)
    assert result.code == 2
    assert result.err.startswith("error: ")
    assert message in result.err
    assert len(result.err.strip().splitlines()) == 1


def test_audit_shows_who_what_when_where(
    capsys: pytest.CaptureFixture[str], registered: Path
) -> None:
    run_cli(capsys, "keys", "create", "--name", "ci", "--scope", "admin")
    run_cli(capsys, "keys", "revoke", "ci")
    result = run_cli(capsys, "audit", "--limit", "3", "--json")
    assert result.code == 0
    rows = result.json()
    assert [(r["action"], r["outcome"]) for r in rows] == [
        ("register", "ok"),
        ("key_create", "ok"),
        ("key_revoke", "ok"),
    ]
    assert rows[0]["target"] == "digits@2"
    assert rows[0]["source"] == "api"
    assert rows[2]["source"] == "cli"
    assert rows[2]["target"] == "key:ci"
    assert all(r["at"] for r in rows)
    assert [r["actor_kind"] for r in rows] == [None, "os_user", "os_user"]  # the CLI's user
    assert rows[2]["actor"] == current_actor().name
    table = run_cli(capsys, "audit")
    assert "key_revoke" in table.out
    assert "digits@1" in table.out
    assert "os_user" in table.out


def test_audit_shows_the_credential_of_a_server_call(
    capsys: pytest.CaptureFixture[str], registered: Path
) -> None:
    with Registry.from_settings(load_settings()) as registry:
        registry.record_audit(Actor("ci", "key", "a1b2c3"), "repository_load", "digits")
    (row,) = run_cli(capsys, "audit", "--limit", "1", "--json").json()
    assert (row["actor"], row["actor_kind"], row["actor_key_id"]) == ("ci", "key", "a1b2c3")
    table = run_cli(capsys, "audit", "--limit", "1")
    assert "a1b2c3" in table.out


def test_registry_check_passes_then_finds_a_flipped_byte(
    capsys: pytest.CaptureFixture[str], registered: Path
) -> None:
    ok = run_cli(capsys, "registry", "check")
    assert ok.code == 0
    assert ok.out.strip() == "checked 2 version(s), 2 file(s): consistent"
    target = artifact_files(registered)[0]
    data = bytearray(target.read_bytes())
    data[100] ^= 0xFF
    target.write_bytes(bytes(data))
    bad = run_cli(capsys, "registry", "check", "--json")
    assert bad.code == 1
    doc = bad.json()
    assert doc["consistent"] is False
    assert len(doc["problems"]) == 1
    assert "is corrupt" in doc["problems"][0]


def new_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def test_registry_encrypt_and_rotate(
    capsys: pytest.CaptureFixture[str], registered: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old, new = new_key(), new_key()
    monkeypatch.setenv("MAAS_ENCRYPTION_KEY", old)
    first = run_cli(capsys, "registry", "encrypt", "--json")
    assert first.code == 0, first.err
    assert first.json() == {"encrypted": 2, "rotated": 0, "unchanged": 0}
    assert all(p.read_bytes().startswith(b"MAASAES1") for p in artifact_files(registered))
    assert run_cli(capsys, "registry", "check").code == 0
    monkeypatch.setenv("MAAS_ENCRYPTION_KEY", new)
    before = [p.read_bytes() for p in artifact_files(registered)]
    refused = run_cli(capsys, "registry", "encrypt")
    assert refused.code == 1
    assert "nothing was changed" in refused.err
    assert [p.read_bytes() for p in artifact_files(registered)] == before
    rotated = run_cli(capsys, "registry", "encrypt", "--rotate-from", old)
    assert rotated.code == 0
    assert rotated.out.strip() == "encrypted 0, rotated 2, already current 0"
    monkeypatch.delenv("MAAS_ENCRYPTION_KEY")
    no_key = run_cli(capsys, "models", "download", "digits@1", "--to", str(registered / "out"))
    assert no_key.code == 1
    assert "no key is configured" in no_key.err


@pytest.mark.slow
def test_sign_and_require_signatures(
    capsys: pytest.CaptureFixture[str],
    registered: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    private, public = write_ec_keypair(tmp_path, "k")
    signed = run_cli(capsys, "sign", "digits@1", "--private-key", str(private), "--json")
    assert signed.code == 0, signed.err
    assert signed.json()["ref"] == "digits@1"
    monkeypatch.setenv("MAAS_SECURITY_REQUIRE_SIGNATURES", "1")
    monkeypatch.setenv("MAAS_SECURITY_SIGNING_PUBLIC_KEY", str(public))
    assert run_cli(capsys, "alias", "digits", "production", "1").code == 0
    refused = run_cli(capsys, "alias", "digits", "production", "2")
    assert refused.code == 1
    assert "digits@2 is unsigned and signatures are required" in refused.err
    check = run_cli(capsys, "registry", "check", "--json")
    assert check.code == 1
    assert check.json()["problems"] == [
        "digits@2 model.onnx: digits@2 is unsigned and signatures are required; "
        "sign it with: maas sign digits@2 --private-key KEY.pem"
    ]
