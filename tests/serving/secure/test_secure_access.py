"""Who may call what, on real servers: a key scoped `infer:digits` over REST and gRPC alike."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
from onnx_models import Classifier
from secure_helpers import INFER_BODY, KEY_POLL_S, ROWS, Keys, Served, grpc_infer_request
from tritonclient.utils import InferenceServerException

from maas.protocol.proto import grpc_service_pb2 as pb
from maas.protocol.proto import grpc_service_pb2_grpc as pb_grpc
from maas.registry.store import Registry
from maas.security.keys import KeyStore

REVOCATION_WAIT_S = 30 * KEY_POLL_S  # generous: the refusal is expected after one poll


def expected_labels(model: Classifier) -> list[int]:
    return (ROWS @ model.weights + model.bias).argmax(axis=1).tolist()


def triton_http_infer(url: str, model: str, bearer: str | None) -> np.ndarray:
    client = triton_http.InferenceServerClient(url.removeprefix("http://"))
    try:
        inputs = [triton_http.InferInput("input", list(ROWS.shape), "FP32")]
        inputs[0].set_data_from_numpy(ROWS, binary_data=True)
        headers = {"Authorization": bearer} if bearer else None
        result = client.infer(model, inputs, headers=headers)
        return np.asarray(result.as_numpy("label"))
    finally:
        client.close()


def triton_grpc_infer(address: str, model: str, bearer: str | None) -> np.ndarray:
    client = triton_grpc.InferenceServerClient(address)
    try:
        inputs = [triton_grpc.InferInput("input", list(ROWS.shape), "FP32")]
        inputs[0].set_data_from_numpy(ROWS)
        headers = {"authorization": bearer} if bearer else None
        result = client.infer(model, inputs, headers=headers)
        return np.asarray(result.as_numpy("label"))
    finally:
        client.close()


async def rest_status(served: Served, method: str, path: str, bearer: str | None) -> httpx.Response:
    headers = {"Authorization": bearer} if bearer else {}
    async with httpx.AsyncClient(base_url=served.http_url, timeout=10) as client:
        body = INFER_BODY if method == "POST" and path.endswith("infer") else {}
        return await client.request(
            method, path, headers=headers, json=body if method != "GET" else None
        )


async def grpc_code(
    served: Served, call: Callable[[pb_grpc.GRPCInferenceServiceStub], object], bearer: str | None
) -> grpc.StatusCode:
    metadata = (("authorization", bearer),) if bearer else ()
    async with grpc.aio.insecure_channel(served.grpc_address) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        try:
            await call(stub)(metadata=metadata)  # type: ignore[operator]
        except grpc.aio.AioRpcError as err:
            return err.code()
    return grpc.StatusCode.OK


async def test_rest_infer_digits_with_its_key(
    secured: Served, keys: Keys, digits_model: Classifier
) -> None:
    labels = await asyncio.to_thread(
        triton_http_infer, secured.http_url, "digits", keys.bearer("digits")
    )
    assert labels.tolist() == expected_labels(digits_model)
    reply = await rest_status(secured, "POST", "/v2/models/digits/infer", keys.bearer("digits"))
    assert reply.status_code == 200
    assert reply.json()["outputs"][1]["data"] == expected_labels(digits_model)


# What a key scoped `infer:digits` gets from each kind of REST endpoint.
DIGITS_KEY_STATUS = {
    ("POST", "/v2/models/iris/infer"): 403,  # another model
    ("GET", "/v2/models/iris"): 403,
    ("GET", "/v2/models/digits"): 200,  # infer implies read
    ("GET", "/v2/models/digits/versions/1/ready"): 200,
    ("POST", "/v2/repository/models/digits/load"): 403,  # management
    ("PUT", "/v2/models/digits/aliases/production"): 403,
    ("GET", "/v2/models/digits/route"): 403,
    ("POST", "/v2/models/digits/rollback"): 403,
    ("POST", "/v2/repository/index"): 200,  # lists only what the key may read
    ("GET", "/v2/models/stats"): 403,  # every model's statistics
    ("GET", "/metrics"): 403,
    ("POST", "/v1/models/iris:predict"): 403,  # TF Serving
    ("POST", "/predictions/iris"): 403,  # TorchServe
    ("GET", "/v2"): 200,  # any valid key
    ("GET", "/v2/no/such/route"): 404,  # known callers learn a route is missing
}
NEEDS_A_KEY = [
    ("POST", "/v2/models/digits/infer"),
    ("GET", "/v2/models/digits"),
    ("GET", "/v2"),
    ("GET", "/metrics"),
    ("POST", "/v2/repository/models/digits/load"),
    ("POST", "/invocations"),
    ("POST", "/predictions/digits"),
    ("POST", "/v1/models/digits:predict"),
    ("GET", "/v2/no/such/route"),  # no route discovery without a key
]


async def test_rest_scopes_of_an_infer_digits_key(secured: Served, keys: Keys) -> None:
    got = {}
    for method, path in DIGITS_KEY_STATUS:
        reply = await rest_status(secured, method, path, keys.bearer("digits"))
        got[method, path] = reply.status_code
    assert got == DIGITS_KEY_STATUS


@pytest.mark.parametrize("bearer", [None, "Bearer maas_0123456789ab_not-a-real-secret", "Basic x"])
async def test_rest_without_a_valid_key_is_401(secured: Served, bearer: str | None) -> None:
    for method, path in NEEDS_A_KEY:
        reply = await rest_status(secured, method, path, bearer)
        assert (path, reply.status_code) == (path, 401)
        assert reply.headers["www-authenticate"].startswith("Bearer")
        assert "error" in reply.json()


@pytest.mark.parametrize("path", ["/v2/health/live", "/v2/health/ready", "/ping"])
async def test_rest_health_stays_open(secured: Served, path: str) -> None:
    reply = await rest_status(secured, "GET", path, None)
    assert reply.status_code == 200


async def test_rest_admin_key_reaches_management(secured: Served, keys: Keys) -> None:
    reply = await rest_status(secured, "POST", "/v2/repository/index", keys.bearer("admin"))
    assert reply.status_code == 200
    assert sorted(entry["name"] for entry in reply.json()) == ["digits", "iris"]
    metrics = await rest_status(secured, "GET", "/metrics", keys.bearer("admin"))
    assert metrics.status_code == 200
    assert b"maas_" in metrics.content


async def test_sagemaker_invocations_checks_the_target_model(secured: Served, keys: Keys) -> None:
    async with httpx.AsyncClient(base_url=secured.http_url, timeout=10) as client:
        auth = {"Authorization": keys.bearer("digits")}
        ok = await client.post(
            "/invocations",
            json={"instances": ROWS.tolist()},
            headers={**auth, "X-Amzn-SageMaker-Target-Model": "digits.tar.gz"},
        )
        other = await client.post(
            "/invocations",
            json={"instances": ROWS.tolist()},
            headers={**auth, "X-Amzn-SageMaker-Target-Model": "iris.tar.gz"},
        )
        unnamed = await client.post("/invocations", json={"instances": ROWS.tolist()}, headers=auth)
    assert ok.status_code == 200
    assert len(ok.json()["predictions"]) == 2
    assert other.status_code == 403
    assert unnamed.status_code == 403  # two models served: the key needs infer:*


async def test_grpc_infer_digits_with_its_key(
    secured: Served, keys: Keys, digits_model: Classifier
) -> None:
    labels = await asyncio.to_thread(
        triton_grpc_infer, secured.grpc_address, "digits", keys.bearer("digits")
    )
    assert labels.tolist() == expected_labels(digits_model)


@pytest.mark.parametrize(
    ("call", "code"),
    [
        (
            lambda s: lambda **kw: s.ModelInfer(grpc_infer_request("iris"), **kw),
            "PERMISSION_DENIED",
        ),
        (lambda s: lambda **kw: s.ModelInfer(grpc_infer_request("digits"), **kw), "OK"),
        (
            lambda s: lambda **kw: s.ModelMetadata(pb.ModelMetadataRequest(name="iris"), **kw),
            "PERMISSION_DENIED",
        ),
        (
            lambda s: (
                lambda **kw: s.RepositoryModelLoad(
                    pb.RepositoryModelLoadRequest(model_name="digits"), **kw
                )
            ),
            "PERMISSION_DENIED",
        ),
        (lambda s: lambda **kw: s.ServerMetadata(pb.ServerMetadataRequest(), **kw), "OK"),
    ],
)
async def test_grpc_scopes_of_an_infer_digits_key(
    secured: Served, keys: Keys, call: Callable[..., object], code: str
) -> None:
    assert await grpc_code(secured, call, keys.bearer("digits")) == grpc.StatusCode[code]


@pytest.mark.parametrize("bearer", [None, "Bearer maas_0123456789ab_not-a-real-secret"])
async def test_grpc_without_a_valid_key_is_unauthenticated(
    secured: Served, bearer: str | None
) -> None:
    def infer(s: pb_grpc.GRPCInferenceServiceStub) -> object:
        return lambda **kw: s.ModelInfer(grpc_infer_request("digits"), **kw)

    def metadata(s: pb_grpc.GRPCInferenceServiceStub) -> object:
        return lambda **kw: s.ServerMetadata(pb.ServerMetadataRequest(), **kw)

    assert await grpc_code(secured, infer, bearer) == grpc.StatusCode.UNAUTHENTICATED
    assert await grpc_code(secured, metadata, bearer) == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(InferenceServerException, match="UNAUTHENTICATED"):
        await asyncio.to_thread(triton_grpc_infer, secured.grpc_address, "digits", bearer)


async def test_grpc_health_stays_open(secured: Served) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    async with grpc.aio.insecure_channel(secured.grpc_address) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        live = await stub.ServerLive(pb.ServerLiveRequest())
        ready = await stub.ServerReady(pb.ServerReadyRequest())
        health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
    assert live.live
    assert ready.ready
    assert health.status == health_pb2.HealthCheckResponse.SERVING


async def test_grpc_stream_refuses_another_model(secured: Served, keys: Keys) -> None:
    metadata = (("authorization", keys.bearer("digits")),)
    async with grpc.aio.insecure_channel(secured.grpc_address) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        good = [
            r
            async for r in stub.ModelStreamInfer(
                iter([grpc_infer_request("digits")] * 3), metadata=metadata
            )
        ]
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            async for _ in stub.ModelStreamInfer(
                iter([grpc_infer_request("iris")]), metadata=metadata
            ):
                pass
    assert [r.error_message for r in good] == ["", "", ""]
    assert [r.infer_response.model_name for r in good] == ["digits"] * 3
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_a_revoked_key_stops_working_on_running_servers(
    secured: Served, keys: Keys, tmp_path: Path
) -> None:
    bearer = keys.bearer("digits")
    before = await rest_status(secured, "POST", "/v2/models/digits/infer", bearer)
    assert before.status_code == 200
    with Registry(
        f"sqlite:///{tmp_path / 'registry.db'}", tmp_path / "artifacts", source="cli"
    ) as other_process_view:
        KeyStore(other_process_view).revoke("digits", actor="test")
    loop = asyncio.get_running_loop()
    give_up = loop.time() + REVOCATION_WAIT_S
    status = 200
    while status == 200 and loop.time() < give_up:
        await asyncio.sleep(KEY_POLL_S / 2)
        status = (await rest_status(secured, "POST", "/v2/models/digits/infer", bearer)).status_code
    assert status == 401

    def infer(s: pb_grpc.GRPCInferenceServiceStub) -> object:
        return lambda **kw: s.ModelInfer(grpc_infer_request("digits"), **kw)

    assert await grpc_code(secured, infer, bearer) == grpc.StatusCode.UNAUTHENTICATED
    still = await rest_status(secured, "POST", "/v2/models/digits/infer", keys.bearer("admin"))
    assert still.status_code == 200


async def test_management_through_rest_is_audited_under_the_key(
    secured: Served, keys: Keys, secure_registry: Registry
) -> None:
    async with httpx.AsyncClient(base_url=secured.http_url, timeout=10) as client:
        moved = await client.put(
            "/v2/models/digits/aliases/production",
            json={"version": 1},
            headers={"Authorization": keys.bearer("admin")},
        )
        refused = await client.put(
            "/v2/models/digits/aliases/staging",
            json={"version": 1},
            headers={"Authorization": keys.bearer("digits")},
        )
    assert moved.status_code == 200
    assert refused.status_code == 403
    aliases = [e for e in secure_registry.audit_log() if e.target.startswith("digits")]
    assert [(e.actor, e.action, e.outcome) for e in aliases][-1:] == [("admin", "set_alias", "ok")]
    assert all("staging" not in e.target for e in aliases)  # a refused call changes nothing


async def test_repository_index_lists_only_readable_models(secured: Served, keys: Keys) -> None:
    async with httpx.AsyncClient(base_url=secured.http_url, timeout=10) as client:
        narrow = await client.post(
            "/v2/repository/index", headers={"Authorization": keys.bearer("digits")}
        )
        wide = await client.post(
            "/v2/repository/index", headers={"Authorization": keys.bearer("admin")}
        )
    assert [e["name"] for e in narrow.json()] == ["digits"]
    assert sorted(e["name"] for e in wide.json()) == ["digits", "iris"]
    async with grpc.aio.insecure_channel(secured.grpc_address) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        names = {}
        for key in ("digits", "admin"):
            index = await stub.RepositoryIndex(
                pb.RepositoryIndexRequest(), metadata=(("authorization", keys.bearer(key)),)
            )
            names[key] = sorted(m.name for m in index.models)
    assert names == {"digits": ["digits"], "admin": ["digits", "iris"]}
