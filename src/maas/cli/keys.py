"""`maas keys create | list | revoke`: API keys for the REST and gRPC servers."""

from __future__ import annotations

import click

from maas.cli import echo_json
from maas.cli.registry import JSON_OPTION, current_actor, open_registry


@click.group()
def keys() -> None:
    """Create, list and revoke API keys (sent as 'Authorization: Bearer KEY').

    \b
      maas keys create --name ci --scope infer:digits --scope read:*
      maas keys create --name web --scope infer:* --rate-limit 50/s
      maas keys list
      maas keys revoke ci
    Scopes: admin, metrics, infer:MODEL, read:MODEL (MODEL may use * as a wildcard).
    Servers require a key once any key exists; a revoked key stops working within one poll
    interval (MAAS_SECURITY_KEY_POLL_INTERVAL_S, default 5 s).
    """


@keys.command()
@click.option("--name", required=True, help="A label for the key (e.g. ci, web-frontend).")
@click.option(
    "--scope", "scopes", multiple=True, required=True, help="What the key may do (repeatable)."
)
@click.option("--rate-limit", help="Requests per second/minute/hour: 50/s, 3000/m, 10/s,burst=40.")
@JSON_OPTION
def create(name: str, scopes: tuple[str, ...], rate_limit: str | None, as_json: bool) -> None:
    """Create a key and print it ONCE: only a salted hash is stored."""
    from maas.security.keys import KeyStore
    from maas.security.ratelimit import RateLimit

    limit = RateLimit.parse(rate_limit) if rate_limit else None
    with open_registry() as registry:
        created = KeyStore(registry).create(name, list(scopes), limit, actor=current_actor())
    if as_json:
        echo_json({**created.key.to_dict(), "key": created.token})
        return
    click.echo(f"created key {name} (id {created.key.id}), scopes: {', '.join(created.key.scopes)}")
    click.echo("store it now; it is not shown again:")
    click.echo(created.token)


@keys.command("list")
@click.option("--active", "active_only", is_flag=True, help="Leave revoked keys out.")
@JSON_OPTION
def list_keys(active_only: bool, as_json: bool) -> None:
    """List keys (never their secrets): id, name, scopes, rate limit, created, revoked."""
    from maas.security.keys import KeyStore

    with open_registry() as registry:
        found = KeyStore(registry).list(include_revoked=not active_only)
    if as_json:
        echo_json([k.to_dict() for k in found])
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("id", "name", "scopes", "rate limit", "created", "by", "revoked")
    for k in found:
        table.add_row(
            k.id,
            k.name,
            " ".join(k.scopes),
            str(k.rate_limit) if k.rate_limit else "default",
            k.created_at.isoformat(timespec="seconds"),
            k.created_by or "-",
            k.revoked_at.isoformat(timespec="seconds") if k.revoked_at else "-",
        )
    Console().print(table if found else "no API keys")


@keys.command()
@click.argument("name_or_id")
@JSON_OPTION
def revoke(name_or_id: str, as_json: bool) -> None:
    """Revoke the active key NAME_OR_ID; servers refuse it within one poll interval."""
    from maas.security.keys import KeyStore

    with open_registry() as registry:
        key = KeyStore(registry).revoke(name_or_id, actor=current_actor())
    if as_json:
        echo_json(key.to_dict())
    else:
        click.echo(f"revoked key {key.name} (id {key.id})")
