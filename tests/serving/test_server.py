"""`Server`: REST and gRPC started together over one data plane, on ports the system picks."""

from __future__ import annotations

import httpx
import numpy as np
import tritonclient.grpc.aio as grpcclient
from onnx_models import Classifier

from maas.serving.dataplane import DataPlane
from maas.serving.server import Server


async def test_rest_and_grpc_answer_from_one_data_plane(
    data_plane: DataPlane, classifier: Classifier
) -> None:
    server = Server(data_plane, http_port=0, grpc_port=0)
    await server.start()
    try:
        assert server.grpc_port is not None
        assert server.grpc_port != server.http_port
        x = np.random.default_rng(11).normal(size=(3, 4)).astype(np.float32)
        body = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [3, 4],
                            "data": x.ravel().tolist()}]}  # fmt: skip
        async with httpx.AsyncClient() as http:
            url = f"http://127.0.0.1:{server.http_port}/v2/models/iris/infer"
            rest = (await http.post(url, json=body)).json()
        np.testing.assert_allclose(
            np.reshape(rest["outputs"][0]["data"], (3, 3)), classifier.expected(x), atol=1e-5
        )
        client = grpcclient.InferenceServerClient(f"127.0.0.1:{server.grpc_port}")
        try:
            assert await client.is_server_ready()
            tensor = grpcclient.InferInput("input", [3, 4], "FP32")
            tensor.set_data_from_numpy(x)
            result = await client.infer("iris", [tensor])
        finally:
            await client.close()
        np.testing.assert_allclose(
            result.as_numpy("probabilities"), classifier.expected(x), atol=1e-5
        )
        stats = data_plane.model_statistics("iris", None)["model_stats"][0]
        assert stats["inference_stats"]["success"]["count"] == 2
    finally:
        await server.stop()
    assert server.grpc_port is None


async def test_rest_only_server_has_no_grpc_port(data_plane: DataPlane) -> None:
    server = Server(data_plane, http_port=0, grpc_port=None)
    await server.start()
    try:
        assert server.grpc_port is None
        async with httpx.AsyncClient() as http:
            ready = await http.get(f"http://127.0.0.1:{server.http_port}/v2/health/ready")
        assert ready.status_code == 200
    finally:
        await server.stop()
