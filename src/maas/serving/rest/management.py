"""The management API: the v2 model repository extension, aliases, routes and rollback.

    POST   /v2/repository/index                    every version the server should serve
    POST   /v2/repository/models/{m}/load          serve a model (again); retry failed loads
    POST   /v2/repository/models/{m}/unload        stop serving a model (drains first)
    PUT    /v2/models/{m}/aliases/{alias}          {"version": 3}
    GET    /v2/models/{m}/route
    PUT    /v2/models/{m}/route                    {"split": {"production": 90, "canary": 10},
                                                    "guard": {...}, "shadow": "candidate"}
    DELETE /v2/models/{m}/route
    POST   /v2/models/{m}/rollback                 {"alias": "production"} (optional)

Every change is written to the registry's audit log and followed by the server at once (other
servers follow at their next poll). These are `admin` endpoints once authentication is on.
"""

from __future__ import annotations

from typing import Any

from maas.actors import Actor
from maas.errors import InvalidInput, ModelNotFound, Unavailable
from maas.security.acl import Action, actor_of, allows
from maas.serving.dataplane import DataPlane
from maas.serving.manager import ModelManager
from maas.serving.rest.handlers import HttpRequest, Reply, json_body, json_reply, model_name


def match_management(path: str) -> tuple[str, str | None, str | None] | None:
    """Management paths that the v2 route shapes do not cover."""
    if path.startswith("/v2/repository/models/"):
        parts = path[len("/v2/repository/models/") :].split("/")
        if len(parts) == 2 and parts[0] and parts[1] in ("load", "unload"):
            return f"/v2/repository/models/{{m}}/{parts[1]}", parts[0], None
        return None
    if path.startswith("/v2/models/"):
        parts = path[len("/v2/models/") :].split("/")
        if len(parts) == 3 and parts[1] == "aliases" and parts[0] and parts[2]:
            return "/v2/models/{m}/aliases/{v}", parts[0], parts[2]
    return None


class ManagementHandlers:
    """Management endpoints over the data plane's model manager."""

    def __init__(self, data_plane: DataPlane) -> None:
        self._dp = data_plane

    def _manager(self) -> ModelManager:
        if self._dp.control is None:
            raise Unavailable("this server does not follow a registry; management is off")
        return self._dp.control

    async def index(self, request: HttpRequest) -> Reply:
        doc = _body(request.body, required=False)
        entries = self._manager().index()
        principal = request.principal
        if principal is not None:  # the listing holds only the models the caller may read
            entries = [e for e in entries if allows(principal.scopes, Action.READ, e.name)]
        if doc.get("ready"):
            entries = [e for e in entries if e.state == "READY"]
        return json_reply(
            [
                {"name": e.name, "version": e.version, "state": e.state, "reason": e.reason}
                for e in entries
            ]
        )

    async def load(self, request: HttpRequest) -> Reply:
        await self._manager().load_model(model_name(request), _actor(request))
        return json_reply({})

    async def unload(self, request: HttpRequest) -> Reply:
        await self._manager().unload_model(model_name(request), _actor(request))
        return json_reply({})

    async def set_alias(self, request: HttpRequest) -> Reply:
        name, alias = model_name(request), request.version or ""
        version = _body(request.body).get("version")
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise InvalidInput('the body needs "version": a version number')
        await self._manager().set_alias(name, alias, version, _actor(request))
        return json_reply({"name": name, "alias": alias, "version": version})

    async def get_route(self, request: HttpRequest) -> Reply:
        name = model_name(request)
        route = await self._manager().get_route(name)
        if route is None:
            raise ModelNotFound(f"model {name!r} has no route (requests go to production)")
        return json_reply(route.to_dict())

    async def set_route(self, request: HttpRequest) -> Reply:
        from maas.registry.routes import RouteGuard

        doc = _body(request.body)
        split = doc.get("split")
        if not isinstance(split, dict) or not all(
            isinstance(w, int) and not isinstance(w, bool) for w in split.values()
        ):
            raise InvalidInput('the body needs "split": {"TARGET": WEIGHT, ...}')
        guard_doc = doc.get("guard")
        if guard_doc is not None and not isinstance(guard_doc, dict):
            raise InvalidInput('"guard" must be an object')
        shadow = doc.get("shadow")
        if shadow is not None and not isinstance(shadow, str):
            raise InvalidInput('"shadow" must be an alias or a version number (text)')
        guard = RouteGuard.from_dict(guard_doc) if guard_doc else None
        route = await self._manager().set_route(
            model_name(request), list(split.items()), guard, shadow, _actor(request)
        )
        return json_reply(route.to_dict())

    async def clear_route(self, request: HttpRequest) -> Reply:
        removed = await self._manager().clear_route(model_name(request), _actor(request))
        return json_reply({"cleared": removed})

    async def rollback(self, request: HttpRequest) -> Reply:
        alias = _body(request.body, required=False).get("alias", "production")
        if not isinstance(alias, str):
            raise InvalidInput('"alias" must be text')
        name = model_name(request)
        left, now = await self._manager().rollback(name, alias, _actor(request))
        return json_reply({"name": name, "alias": alias, "from": left, "to": now})


def _body(body: bytes, *, required: bool = True) -> dict[str, Any]:
    if not body.strip() and not required:
        return {}
    doc = json_body(body)
    if not isinstance(doc, dict):
        raise InvalidInput("the body must be a JSON object")
    return doc


def _actor(request: HttpRequest) -> Actor:
    """Who to name in the audit log: the authenticated caller, with its credential's kind and
    key id (anonymous without authentication)."""
    return actor_of(request.principal)
