"""`maas route` and `maas rollback`: where a model's traffic goes, and going back."""

from __future__ import annotations

import click

from maas.cli import echo_json
from maas.cli.registry import JSON_OPTION, current_actor, open_registry
from maas.errors import InvalidInput


@click.command()
@click.argument("name")
@click.argument("targets", nargs=-1, metavar="[TARGET=WEIGHT]...")
@click.option("--max-error-rate", type=float, help="Guard: stop a canary above this error rate.")
@click.option("--max-p99-ms", type=float, help="Guard: stop a canary above this p99 latency.")
@click.option(
    "--window",
    "window_s",
    type=float,
    default=60.0,
    show_default=True,
    help="Guard: sliding window in seconds.",
)
@click.option(
    "--min-requests",
    type=int,
    default=20,
    show_default=True,
    help="Guard: answers needed in the window before it judges.",
)
@click.option("--shadow", help="Target (alias or version) that gets copies of every request.")
@click.option("--clear", is_flag=True, help="Remove the route (back to the production alias).")
@JSON_OPTION
def route(
    name: str,
    targets: tuple[str, ...],
    max_error_rate: float | None,
    max_p99_ms: float | None,
    window_s: float,
    min_requests: int,
    shadow: str | None,
    clear: bool,
    as_json: bool,
) -> None:
    """Set, show or clear the default route of model NAME.

    \b
    A TARGET is an alias or a version number; weights are relative.
      maas route digits production=90 canary=10
      maas route digits production=90 canary=10 --max-error-rate 0.05 --max-p99-ms 50
      maas route digits production --shadow candidate
      maas route digits                  show the route
      maas route digits --clear
    Running servers follow within one poll interval. A guard watches every target but the one
    with the largest weight; a breaching target stops getting traffic, and the audit trail and
    `maas models show` say why.
    """
    from maas.registry.routes import RouteGuard, clear_route, get_route, parse_split, set_route

    has_guard = max_error_rate is not None or max_p99_ms is not None
    with open_registry() as registry:
        if clear:
            if targets or has_guard or shadow:
                raise InvalidInput("--clear takes no targets, guard or shadow")
            removed = clear_route(registry, name, actor=current_actor())
            _say(as_json, {"name": name, "cleared": removed}, f"{name}: route cleared")
            return
        if not targets:
            if has_guard or shadow:
                raise InvalidInput("give the split (TARGET=WEIGHT ...) with a guard or shadow")
            found = get_route(registry, name)
            doc = found.to_dict() if found else {"name": name, "split": None}
            text = f"{name}: {found.describe()}" if found else f"{name}: no route (production)"
            _say(as_json, doc, text)
            return
        guard = None
        if has_guard:
            guard = RouteGuard(max_error_rate, max_p99_ms, window_s, min_requests)
        written = set_route(
            registry, name, parse_split(targets), guard=guard, shadow=shadow, actor=current_actor()
        )
    _say(as_json, written.to_dict(), f"{name}: {written.describe()}")


@click.command()
@click.argument("name")
@click.option(
    "--alias", "alias_name", default="production", show_default=True, help="The alias to move back."
)
@JSON_OPTION
def rollback(name: str, alias_name: str, as_json: bool) -> None:
    """Point NAME's alias back at the version it pointed to before its last move.

    Running servers follow within one poll interval, without a restart.
    """
    from maas.registry.routes import rollback_alias

    with open_registry() as registry:
        left, now = rollback_alias(registry, name, alias_name, actor=current_actor())
    doc = {"name": name, "alias": alias_name, "from": left, "to": now}
    _say(as_json, doc, f"{name}@{alias_name}: {left} -> {now}")


def _say(as_json: bool, doc: object, text: str) -> None:
    if as_json:
        echo_json(doc)
    else:
        click.echo(text)
