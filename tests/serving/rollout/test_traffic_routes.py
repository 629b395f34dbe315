"""Routes on a running server: weighted splits set with `maas route`, rollback with
`maas rollback`, guards that stop a breaching canary, and shadow copies that are only counted."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from rollout_harness import Served, infer_body, lookup_body, register, register_lookup

from maas.cli import main
from maas.registry.routes import RouteGuard, get_route, set_route
from maas.registry.store import Registry

Serve = Callable[..., Any]


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Run `maas ...` against the test's registry (the one `fresh_registry` opened)."""
    monkeypatch.setenv("MAAS_REGISTRY_URL", f"sqlite:///{tmp_path / 'registry.db'}")
    monkeypatch.setenv("MAAS_REGISTRY_ARTIFACTS_DIR", str(tmp_path / "artifacts"))
    monkeypatch.setenv("MAAS_HOME", str(tmp_path / "home"))

    def run(*args: str) -> None:
        code: object = 0
        try:
            main(list(args))
        except SystemExit as exit_:
            code = exit_.code
        assert code in (0, None), f"maas {' '.join(args)} exited {code}"

    return run


async def _versions(url: str, model: str, count: int, clients: int = 8) -> collections.Counter[str]:
    seen: collections.Counter[str] = collections.Counter()
    per_client = count // clients

    async def client_loop() -> None:
        async with httpx.AsyncClient(timeout=30) as client:
            for _ in range(per_client):
                response = await client.post(f"{url}/v2/models/{model}/infer", json=infer_body())
                assert response.status_code == 200
                seen[response.headers["x-model-version"]] += 1

    await asyncio.gather(*(client_loop() for _ in range(clients)))
    return seen


@pytest.mark.slow
async def test_a_90_10_split_set_with_maas_route_holds_over_2000_requests(
    fresh_registry: Registry, serve: Serve, cli: Callable[..., None]
) -> None:
    register(fresh_registry, "digits", seed=1)
    register(fresh_registry, "digits", seed=2)
    fresh_registry.set_alias("digits", "production", 1)
    fresh_registry.set_alias("digits", "canary", 2)
    served: Served = await serve()
    await asyncio.to_thread(cli, "route", "digits", "production=90", "canary=10")
    await served.wait_polls(2)
    seen = await _versions(served.url, "digits", 2000)
    assert sum(seen.values()) == 2000
    assert abs(seen["1"] / 2000 - 0.90) <= 0.03
    assert abs(seen["2"] / 2000 - 0.10) <= 0.03
    assert seen["1"] == 1800  # smooth weighted round-robin is exact


@pytest.mark.slow
async def test_maas_rollback_is_followed_by_a_running_server(
    fresh_registry: Registry, serve: Serve, cli: Callable[..., None]
) -> None:
    register(fresh_registry, "digits", seed=1)
    register(fresh_registry, "digits", seed=2)
    fresh_registry.set_alias("digits", "production", 1)
    served: Served = await serve()
    fresh_registry.set_alias("digits", "production", 2)
    await served.wait_polls(2)
    assert (await _versions(served.url, "digits", 8)).keys() == {"2"}
    await asyncio.to_thread(cli, "rollback", "digits")
    assert fresh_registry.get("digits", "production").version == 1
    await served.wait_polls(2)
    assert (await _versions(served.url, "digits", 8)).keys() == {"1"}
    actions = [(e.action, e.outcome) for e in fresh_registry.audit_log()]
    assert ("rollback", "ok: 2->1") in actions


async def test_a_canary_that_breaches_its_guard_stops_getting_traffic(
    fresh_registry: Registry, serve: Serve, cli: Callable[..., None], capsys: Any
) -> None:
    register_lookup(fresh_registry, "lookup", table_size=10)  # answers x = 7
    register_lookup(fresh_registry, "lookup", table_size=3)  # fails on x = 7
    fresh_registry.set_alias("lookup", "production", 1)
    fresh_registry.set_alias("lookup", "canary", 2)
    guard = RouteGuard(max_error_rate=0.05, window_s=60, min_requests=10)
    set_route(fresh_registry, "lookup", [("production", 50), ("canary", 50)], guard=guard)
    served: Served = await serve()
    statuses: collections.Counter[tuple[int, str]] = collections.Counter()
    async with httpx.AsyncClient() as client:
        for _ in range(40):
            response = await client.post(
                f"{served.url}/v2/models/lookup/infer", json=lookup_body(7)
            )
            statuses[(response.status_code, response.headers.get("x-model-version", ""))] += 1
    # 50/50 alternates: the canary failed 10 times, then the guard took it out.
    assert statuses[(500, "")] == 10
    assert statuses[(200, "1")] == 30
    await served.manager.stop()  # waits for the trip to be written (and stops polling)
    route = get_route(fresh_registry, "lookup")
    assert route is not None
    assert route.tripped["canary"].startswith("error rate 1.000 > 0.05")
    assert any(e.action == "route_guard" for e in fresh_registry.audit_log())
    assert served.metric("maas_route_guard_trips_total", model="lookup", version="2") == 1
    capsys.readouterr()
    await asyncio.to_thread(cli, "models", "show", "lookup")
    assert "canary stopped by its guard: error rate" in capsys.readouterr().out
    set_route(fresh_registry, "lookup", [("production", 50), ("canary", 50)], guard=guard)
    await served.manager.refresh()  # a route written again starts with clean guards
    async with httpx.AsyncClient() as client:
        answered = [
            (
                await client.post(f"{served.url}/v2/models/lookup/infer", json=lookup_body(1))
            ).headers["x-model-version"]
            for _ in range(4)
        ]
    assert sorted(answered) == ["1", "1", "2", "2"]


async def test_shadow_copies_are_compared_and_never_returned(
    fresh_registry: Registry, serve: Serve
) -> None:
    register(fresh_registry, "digits", seed=1)
    register(fresh_registry, "digits", seed=2)  # answers differently
    register(fresh_registry, "digits", seed=1)  # the same model again
    fresh_registry.set_alias("digits", "production", 1)
    fresh_registry.set_alias("digits", "candidate", 2)
    fresh_registry.set_alias("digits", "rebuild", 3)
    set_route(fresh_registry, "digits", [("production", 100)], shadow="candidate")
    served: Served = await serve()
    assert (await _versions(served.url, "digits", 16)).keys() == {"1"}
    set_route(fresh_registry, "digits", [("production", 100)], shadow="rebuild")
    await served.manager.refresh()
    assert (await _versions(served.url, "digits", 8)).keys() == {"1"}

    def count(version: str, outcome: str) -> float:
        return served.metric(
            "maas_shadow_comparisons_total", model="digits", version=version, outcome=outcome
        )

    for _ in range(500):
        if count("2", "mismatch") + count("3", "match") >= 24:
            break
        await asyncio.sleep(0.01)
    assert count("2", "mismatch") == 16
    assert count("2", "match") == 0
    assert count("3", "match") == 8
    assert count("3", "mismatch") == 0
