"""`maas audit`: the append-only trail of management actions."""

from __future__ import annotations

import click

from maas.cli import echo_json
from maas.cli.registry import JSON_OPTION, open_registry


@click.command()
@click.option("--limit", default=50, show_default=True, type=click.IntRange(min=1, max=100_000))
@JSON_OPTION
def audit(limit: int, as_json: bool) -> None:
    """Show the newest management actions: when, who (and with which credential: its kind and
    key id), what, on which target, outcome, from where.

    Registrations, alias moves, deletions, signatures, encryption and API key changes are
    recorded; a refused action is recorded with its error code as outcome.
    """
    with open_registry() as registry:
        entries = registry.audit_log(limit)
    if as_json:
        echo_json([e.to_dict() for e in entries])
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("at", "actor", "credential", "action", "target", "outcome", "source")
    for e in entries:
        table.add_row(
            e.at.isoformat(timespec="seconds"),
            e.actor or "-",
            " ".join(part for part in (e.actor_kind, e.actor_key_id) if part) or "-",
            e.action,
            e.target,
            e.outcome,
            e.source,
        )
    Console().print(table if entries else "no audit entries")
