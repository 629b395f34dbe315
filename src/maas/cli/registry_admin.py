"""`maas registry check | encrypt`: verify the registry and encrypt its artifacts at rest."""

from __future__ import annotations

import sys

import click

from maas.cli import echo_json
from maas.cli.registry import JSON_OPTION, current_actor, open_registry


@click.group()
def registry() -> None:
    """Check the registry's consistency, encrypt its artifacts, rotate the encryption key."""


@registry.command()
@JSON_OPTION
def check(as_json: bool) -> None:
    """Verify every artifact (digest, decryptable) and row; exit 1 if anything is wrong."""
    from maas.registry.check import check_registry

    with open_registry() as reg:
        report = check_registry(reg)
    if as_json:
        echo_json(report.to_dict())
    else:
        for note in report.notes:
            click.echo(f"note: {note}")
        for problem in report.problems:
            click.echo(f"problem: {problem}")
        verdict = "consistent" if report.is_consistent else f"{len(report.problems)} problem(s)"
        click.echo(f"checked {report.versions} version(s), {report.files} file(s): {verdict}")
    if not report.is_consistent:
        sys.exit(1)


@registry.command()
@click.option(
    "--rotate-from",
    "old_keys",
    multiple=True,
    help="An old key (base64) that some artifacts are still encrypted with (repeatable).",
)
@JSON_OPTION
def encrypt(old_keys: tuple[str, ...], as_json: bool) -> None:
    """Encrypt every artifact with the configured key (MAAS_ENCRYPTION_KEY or key file).

    \b
      MAAS_ENCRYPTION_KEY=$(openssl rand -base64 32) maas registry encrypt
      MAAS_ENCRYPTION_KEY=NEW maas registry encrypt --rotate-from OLD
    Plaintext files are encrypted and files under an old key re-encrypted, one file at a time,
    each replaced atomically. If any file cannot be read with the given keys, nothing changes.
    """
    from maas.registry.encryption import ArtifactCipher

    old = [ArtifactCipher.from_base64(k, what="--rotate-from") for k in old_keys]
    with open_registry() as reg:
        report = reg.reencrypt_artifacts(old, actor=current_actor())
    if as_json:
        echo_json(
            {
                "encrypted": report.encrypted,
                "rotated": report.rotated,
                "unchanged": report.unchanged,
            }
        )
    else:
        click.echo(
            f"encrypted {report.encrypted}, rotated {report.rotated}, "
            f"already current {report.unchanged}"
        )
