"""Access control: scopes, who may do what to which model, and the action each endpoint needs.

Scopes:
    `admin`                   everything (management, every model, metrics).
    `infer:PATTERN`           inference on the models PATTERN matches (and reading their metadata).
    `read:PATTERN`            metadata, readiness, config and statistics of those models.
    `metrics`                 the Prometheus metrics endpoint.

A PATTERN is a model name in which `*` matches any run of characters: `digits`, `digits-*`, `*`.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field

from maas.actors import Actor
from maas.errors import InvalidInput, PermissionDenied
from maas.security.ratelimit import RateLimit


class Action(enum.Enum):
    """What an endpoint does, which decides the scope it needs."""

    OPEN = "open"  # no credentials needed (health)
    AUTHENTICATED = "authenticated"  # any valid credential (server metadata)
    INFER = "infer"
    READ = "read"
    METRICS = "metrics"
    ADMIN = "admin"


# Endpoint kind -> action; REST routes and gRPC methods name their kind and call `authorize`.
ENDPOINT_ACTIONS: dict[str, Action] = {
    "health_live": Action.OPEN,
    "health_ready": Action.OPEN,
    "grpc_health": Action.OPEN,  # grpc.health.v1
    "grpc_reflection": Action.OPEN,  # the schema only, no data
    "openapi": Action.OPEN,  # the REST API's OpenAPI document: the schema only, no data
    "sagemaker_ping": Action.OPEN,
    "server_metadata": Action.AUTHENTICATED,
    "model_ready": Action.READ,
    "model_metadata": Action.READ,
    "model_config": Action.READ,
    "model_statistics": Action.READ,
    "repository_index": Action.AUTHENTICATED,  # lists only the models the caller may read
    "infer": Action.INFER,
    "infer_stream": Action.INFER,
    "explain": Action.INFER,  # occlusion attributions: runs the model like infer
    "tfserving_predict": Action.INFER,
    "sagemaker_invocations": Action.INFER,
    "torchserve_predictions": Action.INFER,
    # The OpenAI API names its model in the body: admission authenticates (and rate-limits)
    # the caller, and the handler checks infer:MODEL once it has read the body.
    "openai_generate": Action.AUTHENTICATED,
    "metrics": Action.METRICS,
    "repository_load": Action.ADMIN,
    "repository_unload": Action.ADMIN,
    "management": Action.ADMIN,
}

# gRPC method (of inference.GRPCInferenceService) -> endpoint kind.
GRPC_METHOD_KINDS: dict[str, str] = {
    "ServerLive": "health_live",
    "ServerReady": "health_ready",
    "ServerMetadata": "server_metadata",
    "ModelReady": "model_ready",
    "ModelMetadata": "model_metadata",
    "ModelConfig": "model_config",
    "ModelStatistics": "model_statistics",
    "RepositoryIndex": "repository_index",
    "ModelInfer": "infer",
    "ModelStreamInfer": "infer_stream",
    "RepositoryModelLoad": "repository_load",
    "RepositoryModelUnload": "repository_unload",
}

_PATTERN_RE = re.compile(r"[A-Za-z0-9*][A-Za-z0-9._*-]{0,127}")
_PATTERNED = {"infer", "read"}
_PLAIN = {"admin", "metrics"}


@dataclass(frozen=True)
class Principal:
    """Who is calling, as authentication established it.

    Attributes:
        name: the key's name, or the token's subject.
        kind: `key`, `jwt`, or `anonymous` (authentication is off).
        scopes: what it may do.
        key_id: the id of the key that vouched for the caller: the API key's id, or the `kid`
            of the key that signed the JWT (None when the token names none, and when
            anonymous); rate limits count per API key id.
        rate_limit: the key's own limit (None: the server's default).
    """

    name: str
    kind: str
    scopes: frozenset[str]
    key_id: str | None = None
    rate_limit: RateLimit | None = field(default=None)

    @property
    def limit_key(self) -> str:
        """What rate limits count against: the API key's id, or kind and name."""
        if self.kind == "key" and self.key_id:
            return self.key_id
        return f"{self.kind}:{self.name}"


ANONYMOUS = Principal(name="anonymous", kind="anonymous", scopes=frozenset({"admin"}))


def actor_of(principal: Principal | None) -> Actor:
    """Who the audit trail names for a call by `principal` (None: a server without a guard,
    where everyone is anonymous): its name, credential kind and key id."""
    if principal is None:
        return Actor(None, ANONYMOUS.kind)
    return Actor(principal.name, principal.kind, principal.key_id)


def check_scope(scope: str) -> None:
    """Accept a well-formed scope.

    Raises:
        InvalidInput: the scope is not `admin`, `metrics`, `infer:PATTERN` or `read:PATTERN`.
    """
    if scope in _PLAIN:
        return
    kind, sep, pattern = scope.partition(":")
    if sep and kind in _PATTERNED and _PATTERN_RE.fullmatch(pattern):
        return
    raise InvalidInput(
        f"invalid scope {scope!r}: use admin, metrics, infer:MODEL or read:MODEL "
        "(MODEL may use * as a wildcard, e.g. read:*, infer:digits-*)"
    )


def _matches(pattern: str, model: str) -> bool:
    regex = ".*".join(re.escape(part) for part in pattern.split("*"))
    return re.fullmatch(regex, model) is not None


def allows(scopes: frozenset[str], action: Action, model: str | None = None) -> bool:
    """Whether `scopes` permit `action` on `model` (None: not about one model, needs `*`)."""
    if action is Action.OPEN or "admin" in scopes:
        return True
    if action is Action.AUTHENTICATED:
        return True
    if action is Action.METRICS:
        return "metrics" in scopes
    if action is Action.ADMIN:
        return False
    kinds = ("infer",) if action is Action.INFER else ("read", "infer")  # infer implies read
    for scope in scopes:
        kind, _, pattern = scope.partition(":")
        if kind not in kinds:
            continue
        if model is None and pattern == "*":
            return True
        if model is not None and _matches(pattern, model):
            return True
    return False


def authorize(principal: Principal, action: Action | str, model: str | None = None) -> None:
    """Let the call through, or raise PermissionDenied naming the scope it needs.

    Args:
        principal: who calls.
        action: an Action or its value (`infer`, `read`, `admin`, `metrics`, ...).
        model: the model the call is about (None: not about one model).

    Raises:
        PermissionDenied: the principal's scopes do not cover `action` on `model`.
        ValueError: `action` names no Action (a caller's bug).
    """
    action = Action(action)
    if allows(principal.scopes, action, model):
        return
    if action is Action.ADMIN or action is Action.METRICS:
        needed = action.value
    else:
        needed = f"{action.value}:{model or '*'}"
    raise PermissionDenied(
        f'"{principal.name}" lacks the scope {needed} (has: '
        f"{', '.join(sorted(principal.scopes)) or 'none'})"
    )


def authorize_endpoint(principal: Principal, kind: str, model: str | None = None) -> None:
    """`authorize` for an endpoint kind of `ENDPOINT_ACTIONS`.

    Raises:
        PermissionDenied: as `authorize`.
        KeyError: `kind` is not in the table (a front-end bug).
    """
    authorize(principal, ENDPOINT_ACTIONS[kind], model)
