"""The explain endpoint on a trained digits MLP: attributions pass the occlusion sanity check."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import numpy as np
import pytest
from trained_models import TrainedHome

from maas.evaluate.occlusion import occlude
from maas.evaluate.timing import open_session
from maas.optimize.source import load_source
from maas.registry import Registry
from maas.serving.rest.server import RestServer
from maas.serving.server import build_data_plane


@pytest.fixture
async def served_url(registry: Registry, trained_home: TrainedHome) -> AsyncIterator[str]:
    parent = trained_home.parent
    data_plane = build_data_plane(registry, [f"{parent.name}@{parent.version}"])
    server = RestServer(data_plane, host="127.0.0.1", port=0)
    await server.start()
    yield f"http://127.0.0.1:{server.port}/v2/models/{parent.name}"
    await server.stop()
    data_plane.close()


@pytest.mark.slow
async def test_served_attributions_point_at_the_features_that_matter(
    served_url: str, registry: Registry, trained_home: TrainedHome
) -> None:
    parent = trained_home.parent
    source = load_source(registry, parent.name, parent.version)
    rows = source.test_x[:20].astype(np.float32)
    body = {
        "inputs": [
            {
                "name": "input",
                "datatype": "FP32",
                "shape": list(rows.shape),
                "data": rows.ravel().tolist(),
            }
        ]
    }
    async with httpx.AsyncClient(timeout=60) as http:
        reply = await http.post(f"{served_url}/explain", json=body)
    assert reply.status_code == 200, reply.text
    out = {o["name"]: np.asarray(o["data"]).reshape(o["shape"]) for o in reply.json()["outputs"]}
    assert out["attributions"].shape == rows.shape
    session = open_session(source.onnx_bytes)
    baseline = source.scaler.offset  # the server occludes with the recorded training mean
    rng = np.random.default_rng(0)
    k = 8
    top_drops, random_drops = [], []
    for row, attributions, cls in zip(rows, out["attributions"], out["target"], strict=True):
        p = session.run(["probabilities"], {"input": row[None]})[0][0][cls]
        for features, drops in (
            (np.argsort(-attributions)[:k], top_drops),
            (rng.choice(row.size, size=k, replace=False), random_drops),
        ):
            masked = occlude(row, baseline, features)
            drops.append(p - session.run(["probabilities"], {"input": masked[None]})[0][0][cls])
    assert np.mean(top_drops) > np.mean(random_drops) + 0.05
