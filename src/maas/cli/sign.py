"""`maas sign NAME@REF --private-key KEY.pem`: sign a version (OpenSSF model-signing format)."""

from __future__ import annotations

from pathlib import Path

import click

from maas.cli import echo_json
from maas.cli.registry import JSON_OPTION, current_actor, open_registry


@click.command()
@click.argument("ref")
@click.option(
    "--private-key",
    required=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="PEM elliptic-curve private key (P-256, P-384 or P-521).",
)
@click.option("--password", envvar="MAAS_SIGNING_KEY_PASSWORD", help="The key's password.")
@JSON_OPTION
def sign(ref: str, private_key: Path, password: str | None, as_json: bool) -> None:
    """Sign version NAME[@REF] and store the signature in the registry.

    \b
      openssl ecparam -name prime256v1 -genkey -noout -out signing.pem
      openssl ec -in signing.pem -pubout -out signing.pub.pem
      maas sign digits@3 --private-key signing.pem
    Servers with MAAS_SECURITY_REQUIRE_SIGNATURES=1 and MAAS_SECURITY_SIGNING_PUBLIC_KEY load
    only versions signed by that key, and aliases can only move to such versions.
    """
    from maas.registry import parse_ref
    from maas.security.signing import sign_version

    parsed = parse_ref(ref)
    with open_registry() as registry:
        mv = registry.get(parsed.name, parsed.ref)
        signed = sign_version(registry, mv, private_key, password=password, actor=current_actor())
    if as_json:
        echo_json({"ref": signed.ref, "key_id": signed.key_id})
    else:
        click.echo(f"signed {signed.ref} with key {signed.key_id[:16]}")
