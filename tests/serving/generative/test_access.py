"""Keys and scopes on the generation endpoints: the OpenAI API checks `infer:MODEL` for the
model named in the body, `/v1/models` lists only what the key may read, and the v2 generate
routes are guarded like `/infer`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from lm_models import TinyLm
from prometheus_client import CollectorRegistry

from maas.registry.store import Registry
from maas.security.auth import Authenticator
from maas.security.guard import Guard
from maas.security.keys import KeyStore
from maas.serving.options import ServingConfig
from maas.serving.protection import Protection
from maas.serving.rest.server import RestServer
from maas.serving.server import build_data_plane

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def guarded(tmp_path: Path, tiny_lm: TinyLm) -> AsyncIterator[tuple[str, dict[str, str]]]:
    registry = Registry(f"sqlite:///{tmp_path / 'registry.db'}", tmp_path / "artifacts")
    for name in ("gpt-a", "gpt-b"):
        registry.register(
            name,
            tiny_lm.model_bytes,
            signature=tiny_lm.signature,
            lineage={"generation": tiny_lm.config},
            files={"tokenizer.json": tiny_lm.tokenizer_json.encode()},
        )
    store = KeyStore(registry)
    tokens = {
        "a": store.create("a", ["infer:gpt-a"]).token,
        "metrics": store.create("metrics", ["metrics"]).token,
    }
    data_plane = build_data_plane(registry, None, ServingConfig(), CollectorRegistry())
    protection = Protection(guard=Guard(Authenticator(KeyStore(registry), poll_interval_s=0.2)))
    server = RestServer(data_plane, "127.0.0.1", 0, protection=protection)
    await server.start()
    yield f"http://127.0.0.1:{server.port}", tokens
    await server.stop(grace_s=1.0)
    data_plane.close()
    registry.close()


def auth(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def test_openai_routes_check_the_model_in_the_body(
    guarded: tuple[str, dict[str, str]],
) -> None:
    url, tokens = guarded
    body = {"prompt": "hello", "max_tokens": 2, "temperature": 0}
    async with httpx.AsyncClient(base_url=url) as http:
        allowed = await http.post(
            "/v1/completions", json={**body, "model": "gpt-a"}, headers=auth(tokens["a"])
        )
        denied = await http.post(
            "/v1/completions", json={**body, "model": "gpt-b"}, headers=auth(tokens["a"])
        )
        no_key = await http.post("/v1/completions", json={**body, "model": "gpt-a"})
        listed = await http.get("/v1/models", headers=auth(tokens["a"]))
        not_infer = await http.post(
            "/v1/chat/completions",
            json={"model": "gpt-a", "messages": [{"role": "user", "content": "hi"}]},
            headers=auth(tokens["metrics"]),
        )
    assert allowed.status_code == 200
    assert allowed.json()["usage"]["completion_tokens"] == 2
    assert denied.status_code == 403
    assert denied.json()["error"]["type"] == "permission_error"
    assert "infer:gpt-b" in denied.json()["error"]["message"]
    assert no_key.status_code == 401
    assert [m["id"] for m in listed.json()["data"]] == ["gpt-a"]
    assert not_infer.status_code == 403


async def test_v2_generate_is_guarded_like_infer(guarded: tuple[str, dict[str, str]]) -> None:
    url, tokens = guarded
    body = {"text_input": "hello", "parameters": {"max_tokens": 2}}
    async with httpx.AsyncClient(base_url=url) as http:
        allowed = await http.post("/v2/models/gpt-a/generate", json=body, headers=auth(tokens["a"]))
        denied = await http.post(
            "/v2/models/gpt-b/generate_stream", json=body, headers=auth(tokens["a"])
        )
    assert allowed.status_code == 200
    assert denied.status_code == 403
