"""The management API: repository index, load and unload, aliases, routes and rollback over REST,
each followed at once by the server and recorded in the registry's audit log."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from rollout_harness import Served, artifact_path, infer_body, register

from maas.registry.store import Registry
from maas.serving.rest.routes import ROUTES, bind_routes

Serve = Callable[..., Any]


async def _version(client: httpx.AsyncClient, model: str = "digits") -> str:
    response = await client.post(f"/v2/models/{model}/infer", json=infer_body())
    assert response.status_code == 200
    return str(response.json()["model_version"])


async def test_alias_route_and_rollback_calls_take_effect_at_once_and_are_audited(
    fresh_registry: Registry, serve: Serve
) -> None:
    register(fresh_registry, "digits", seed=1)
    register(fresh_registry, "digits", seed=2)
    fresh_registry.set_alias("digits", "production", 1)
    served: Served = await serve()
    async with httpx.AsyncClient(base_url=served.url) as client:
        moved = await client.put("/v2/models/digits/aliases/production", json={"version": 2})
        assert moved.json() == {"name": "digits", "alias": "production", "version": 2}
        assert await _version(client) == "2"

        await client.put("/v2/models/digits/aliases/canary", json={"version": 1})
        split = {"split": {"production": 1, "canary": 1}, "guard": {"max_p99_ms": 1000}}
        route = await client.put("/v2/models/digits/route", json=split)
        assert route.status_code == 200
        assert route.json()["split"] == {"production": 1, "canary": 1}
        assert sorted([await _version(client), await _version(client)]) == ["1", "2"]
        shown = (await client.get("/v2/models/digits/route")).json()
        assert shown["guard"]["max_p99_ms"] == 1000
        assert (await client.delete("/v2/models/digits/route")).json() == {"cleared": True}
        assert (await client.get("/v2/models/digits/route")).status_code == 404

        back = await client.post("/v2/models/digits/rollback", json={"alias": "production"})
        assert back.json() == {"name": "digits", "alias": "production", "from": 2, "to": 1}
        assert await _version(client) == "1"
        bad = await client.put("/v2/models/digits/aliases/production", json={"version": 9})
        assert bad.status_code == 404
    actions = [e.action for e in fresh_registry.audit_log()]
    for action in ("set_alias", "set_route", "clear_route", "rollback"):
        assert action in actions


async def test_repository_index_load_and_unload(
    fresh_registry: Registry, serve: Serve, tmp_path: Path
) -> None:
    register(fresh_registry, "digits", seed=1)
    fresh_registry.set_alias("digits", "production", 1)
    served: Served = await serve()
    mv = register(fresh_registry, "digits", seed=2)
    artifact_path(tmp_path / "artifacts", mv.digest).unlink()
    async with httpx.AsyncClient(base_url=served.url) as client:
        await served.manager.refresh()
        index = (await client.post("/v2/repository/index", json={})).json()
        assert index[0] == {"name": "digits", "version": "1", "state": "READY", "reason": ""}
        assert index[1]["version"] == "2"
        assert index[1]["state"] == "UNAVAILABLE"
        assert "missing" in index[1]["reason"]
        ready = (await client.post("/v2/repository/index", json={"ready": True})).json()
        assert [e["version"] for e in ready] == ["1"]

        assert (await client.post("/v2/repository/models/digits/unload")).status_code == 200
        gone = await client.post("/v2/models/digits/infer", json=infer_body())
        assert gone.status_code == 404
        assert (await client.post("/v2/repository/models/digits/load")).status_code == 200
        assert await _version(client) == "1"
        unknown = await client.post("/v2/repository/models/nope/load")
        assert unknown.status_code == 404
    audited = [(e.action, e.target, e.outcome) for e in fresh_registry.audit_log()]
    assert ("repository_unload", "digits", "ok") in audited
    assert ("repository_load", "digits", "ok") in audited
    assert ("repository_load", "nope", "not_found") in audited
    assert ("load_version", "digits@2", "failed") in audited


async def test_every_mounted_route_names_its_endpoint_kind(
    fresh_registry: Registry, serve: Serve
) -> None:
    from maas.security.acl import ENDPOINT_ACTIONS

    register(fresh_registry, "digits", seed=1)
    served: Served = await serve()
    table = bind_routes(served.data_plane)  # every declared handler exists
    assert len(table) == len(ROUTES)
    assert all(route.kind in ENDPOINT_ACTIONS for route in table)
    management = {(r.method, r.shape) for r in table if r.kind == "management"}
    assert ("PUT", "/v2/models/{m}/route") in management


async def test_grpc_repository_load_and_unload_go_through_the_manager(
    fresh_registry: Registry, serve: Serve
) -> None:
    import tritonclient.grpc.aio as triton_aio
    from tritonclient.utils import InferenceServerException

    from maas.serving.grpc.server import GrpcServer

    register(fresh_registry, "digits", seed=1)
    served: Served = await serve()
    grpc_server = GrpcServer(served.data_plane, "127.0.0.1", 0)
    await grpc_server.start()
    client = triton_aio.InferenceServerClient(f"127.0.0.1:{grpc_server.port}")
    try:
        await client.unload_model("digits")
        assert served.data_plane.repository.model_names() == []
        await client.load_model("digits")
        assert served.data_plane.repository.model_names() == ["digits"]
        with pytest.raises(InferenceServerException, match="nope"):
            await client.load_model("nope")
    finally:
        await client.close()
        await grpc_server.stop()
    audited = [(e.action, e.target) for e in fresh_registry.audit_log()]
    assert ("repository_unload", "digits") in audited
    assert ("repository_load", "digits") in audited
