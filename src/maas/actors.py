"""Who acts on the registry, as its audit trail records it (light: imported by every layer)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Actor:
    """Who asked for a change, as the audit trail records it.

    Attributes:
        name: the API key's name, the token's subject or the local user (None: unknown).
        kind: the credential: `key` (an API key), `jwt` (a bearer token), `anonymous` (a server
            without authentication), `os_user` (the CLI, run by a local user) or `server` (a
            server acting on its own: failed loads, guard trips).
        key_id: the API key's id, or the id (`kid`) of the key that signed the token.
    """

    name: str | None
    kind: str
    key_id: str | None = None


# Who to audit: an `Actor`, a bare name (its credential unknown), or None (nobody known).
AnyActor = Actor | str | None


def actor_name(actor: AnyActor) -> str | None:
    """The name of `actor`, for the tables that keep only who (alias history, routes, keys)."""
    return actor.name if isinstance(actor, Actor) else actor
