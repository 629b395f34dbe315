"""No amplification: a request cannot make `maas serve` hold much more than its own size.

Against a live server in a subprocess (its memory read from /proc), over real sockets: outputs
named twice or more often than the model has are refused on REST (JSON and binary), explain and
gRPC (unary and streaming); long unauthenticated paths leave no trace; answers over
`max_response_bytes` are refused on every API; an unread gRPC stream does not make answers pile
up. Each test checks the server's resident memory
stays within 20% of where it started.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
from collections import Counter
from collections.abc import AsyncIterator, Iterator

import grpc
import httpx
import numpy as np
import pytest
from hardening_helpers import LiveServer, serve_home
from onnx_models import build_classifier

from maas.config import load_settings
from maas.protocol.proto import grpc_service_pb2 as pb
from maas.protocol.proto import grpc_service_pb2_grpc as pb_grpc
from maas.registry.store import Registry
from maas.security.keys import KeyStore

FEATURES = 4
WIDE_CLASSES = 65536  # `wide` answers 256 KiB of FP32 per row
MAX_RESPONSE_BYTES = 2 * 1024 * 1024  # 4 rows of `wide` fit as raw bytes, not as JSON
MAX_REQUEST_BYTES = 4 * 1024 * 1024
MANY = 100_000  # one output named this often: about 2.6 MB of JSON
RSS_GROWTH = 1.2  # the server may grow by at most 20% over a test
ROW = [0.5, -1.0, 2.0, 0.25]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """`maas serve` with `digits` (3 classes) and `wide` (65536 classes), authentication on and
    a 2 MiB response limit."""
    home = tmp_path_factory.mktemp("amplification-home")
    with Registry.from_settings(load_settings(home=home)) as registry:
        for name, classes in (("digits", 3), ("wide", WIDE_CLASSES)):
            model = build_classifier(FEATURES, classes, seed=5)
            registry.register(
                name, model.model_bytes, signature=model.signature, labels=model.labels
            )
        token = KeyStore(registry).create("amplify", ["admin"]).token
    env = {
        "MAAS_SERVE_MAX_RESPONSE_BYTES": str(MAX_RESPONSE_BYTES),
        "MAAS_SERVE_MAX_REQUEST_BYTES": str(MAX_REQUEST_BYTES),
    }
    with serve_home(home, token, env) as live:
        yield live


@pytest.fixture
async def client(server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, headers=server.auth, timeout=60) as c:
        yield c


@pytest.fixture
async def stub(server: LiveServer) -> AsyncIterator[pb_grpc.GRPCInferenceServiceStub]:
    options = [("grpc.max_receive_message_length", 64 * 1024 * 1024)]
    async with grpc.aio.insecure_channel(server.grpc_address, options=options) as ch:
        yield pb_grpc.GRPCInferenceServiceStub(ch)


def v2_body(rows: int, outputs: list[dict[str, object]] | None = None) -> bytes:
    doc: dict[str, object] = {
        "inputs": [
            {"name": "input", "datatype": "FP32", "shape": [rows, FEATURES], "data": ROW * rows}
        ],
    }
    if outputs is not None:
        doc["outputs"] = outputs
    return json.dumps(doc).encode()


def binary_v2_body(rows: int, outputs: list[dict[str, object]]) -> tuple[bytes, dict[str, str]]:
    """The binary tensor data form: input bytes after the JSON header, outputs asked as binary."""
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "input",
                    "datatype": "FP32",
                    "shape": [rows, FEATURES],
                    "parameters": {"binary_data_size": 4 * FEATURES * rows},
                }
            ],
            "outputs": outputs,
            "parameters": {"binary_data_output": True},
        }
    ).encode()
    raw = struct.pack(f"<{FEATURES * rows}f", *(ROW * rows))
    return header + raw, {"Inference-Header-Content-Length": str(len(header))}


def grpc_request(
    model: str, rows: int, outputs: list[str] | None = None, *, raw: bool = False
) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name=model, id=f"{model}-{rows}")
    tensor = request.inputs.add(name="input", datatype="FP32", shape=[rows, FEATURES])
    values = np.array(ROW * rows, dtype=np.float32)
    if raw:
        request.raw_input_contents.append(values.tobytes())
    else:
        tensor.contents.fp32_contents.extend(values.tolist())
    for name in outputs or ():
        request.outputs.add(name=name)
    return request


def named(*names: str) -> list[dict[str, object]]:
    return [{"name": name} for name in names]


# (requested outputs, what the refusal says)
SLOW = pytest.mark.slow  # decoding 100,000 requested outputs takes the server a while
DUPLICATES = [
    pytest.param(
        named("probabilities", "probabilities"),
        'output "probabilities" is requested twice',
        id="named twice",
    ),
    pytest.param(
        named("label", "probabilities", "label"),
        "3 outputs requested",
        id="more than the model has",
    ),
    pytest.param(
        named("probabilities") * MANY, f"{MANY} outputs requested", id="100,000 times", marks=SLOW
    ),
]


def assert_rss_bounded(server: LiveServer, before_kib: int) -> None:
    after_kib = server.rss_kib()
    assert after_kib <= before_kib * RSS_GROWTH, (before_kib, after_kib)


async def warm_up(client: httpx.AsyncClient) -> None:
    """One answered request of each kind, so allocators and arenas have their working size."""
    for model in ("digits", "wide"):
        reply = await client.post(f"/v2/models/{model}/infer", content=v2_body(1))
        assert reply.status_code == 200, reply.text


@pytest.mark.parametrize("encoding", ["json", "binary"])
@pytest.mark.parametrize(("outputs", "message"), DUPLICATES)
async def test_rest_refuses_outputs_named_twice(
    server: LiveServer,
    client: httpx.AsyncClient,
    encoding: str,
    outputs: list[dict[str, object]],
    message: str,
) -> None:
    await warm_up(client)
    before_kib = server.rss_kib()
    if encoding == "json":
        content, headers = v2_body(1, outputs), {}
    else:
        content, headers = binary_v2_body(1, outputs)
    reply = await client.post("/v2/models/digits/infer", content=content, headers=headers)
    assert reply.status_code == 400, reply.text[:200]
    assert message in reply.json()["error"]
    assert "name each output at most once" in reply.json()["error"]
    assert_rss_bounded(server, before_kib)


async def test_rest_answers_every_output_named_once(client: httpx.AsyncClient) -> None:
    reply = await client.post(
        "/v2/models/digits/infer", content=v2_body(2, named("label", "probabilities"))
    )
    assert reply.status_code == 200, reply.text
    outputs = reply.json()["outputs"]
    assert [o["name"] for o in outputs] == ["label", "probabilities"]
    assert outputs[1]["shape"] == [2, 3]


@pytest.mark.parametrize(
    ("outputs", "message"),
    [
        (named("probabilities", "probabilities"), 'output "probabilities" is requested twice'),
        (named("attributions", "attributions"), 'output "attributions" is requested twice'),
        pytest.param(
            named("attributions") * MANY, f"{MANY} outputs requested", marks=SLOW, id="100,000"
        ),
    ],
    ids=["model output", "attributions", "100,000"],
)
async def test_explain_refuses_outputs_named_twice(
    server: LiveServer, client: httpx.AsyncClient, outputs: list[dict[str, object]], message: str
) -> None:
    await warm_up(client)
    before_kib = server.rss_kib()
    reply = await client.post("/v2/models/digits/explain", content=v2_body(1, outputs))
    assert reply.status_code == 400, reply.text[:200]
    assert message in reply.json()["error"]
    assert_rss_bounded(server, before_kib)


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (["label", "label"], 'output "label" is requested twice'),
        (["label", "probabilities", "label"], "3 outputs requested"),
        pytest.param(
            ["probabilities"] * MANY, f"{MANY} outputs requested", marks=SLOW, id="100,000"
        ),
    ],
    ids=["named twice", "more than the model has", "100,000"],
)
async def test_grpc_refuses_outputs_named_twice(
    server: LiveServer,
    stub: pb_grpc.GRPCInferenceServiceStub,
    names: list[str],
    message: str,
) -> None:
    metadata = (("authorization", f"Bearer {server.token}"),)
    ok = await stub.ModelInfer(grpc_request("digits", 1, ["label"]), metadata=metadata)
    assert [o.name for o in ok.outputs] == ["label"]
    before_kib = server.rss_kib()
    for raw in (False, True):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.ModelInfer(grpc_request("digits", 1, names, raw=raw), metadata=metadata)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert message in (refused.value.details() or "")
    assert_rss_bounded(server, before_kib)


@pytest.mark.slow
async def test_grpc_stream_refuses_outputs_named_twice(
    server: LiveServer, stub: pb_grpc.GRPCInferenceServiceStub
) -> None:
    metadata = (("authorization", f"Bearer {server.token}"),)
    before_kib = server.rss_kib()
    duplicated = grpc_request("digits", 1, ["probabilities"] * MANY)
    duplicated.id = "duplicated"
    good = grpc_request("digits", 1, ["probabilities"])
    good.id = "good"
    answers = {}
    async for answer in stub.ModelStreamInfer(iter([duplicated, good]), metadata=metadata):
        answers[answer.infer_response.id] = answer
    assert f"{MANY} outputs requested" in answers["duplicated"].error_message
    assert not answers["duplicated"].infer_response.outputs
    assert answers["good"].error_message == ""
    assert [o.name for o in answers["good"].infer_response.outputs] == ["probabilities"]
    assert_rss_bounded(server, before_kib)


def anonymous_gets(server: LiveServer, paths: list[str]) -> list[int]:
    """GET each path without credentials on one keep-alive connection; the statuses."""
    host, port = server.url.removeprefix("http://").split(":")
    statuses = []
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        answers = sock.makefile("rb")
        for path in paths:
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: maas\r\n\r\n".encode())
            statuses.append(int(answers.readline().split()[1]))
            length = 0
            while (line := answers.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                if name.lower() == b"content-length":
                    length = int(value)
            answers.read(length)
    return statuses


@pytest.mark.slow
async def test_long_unauthenticated_paths_leave_no_trace(
    server: LiveServer, client: httpx.AsyncClient
) -> None:
    """Before the route cache was bounded by bytes, each of these paths stayed in memory twice
    (the path and the model name in it): about 240 MB here."""
    await warm_up(client)
    filler = "m" * 60_000
    warm = await asyncio.to_thread(
        anonymous_gets, server, [f"/v2/models/warm{i}{filler}/ready" for i in range(50)]
    )
    assert set(warm) == {401}
    before_kib = server.rss_kib()
    paths = [f"/v2/models/{filler}{i}/ready" for i in range(2000)]
    statuses = await asyncio.to_thread(anonymous_gets, server, paths)
    assert Counter(statuses) == {401: len(paths)}
    assert_rss_bounded(server, before_kib)
    assert server.is_alive()


# (API, path, body, extra headers) of a 4-row request to `wide`: 1 MiB of FP32, about 4.3 MiB
# as JSON text.
JSON_APIS = [
    ("v2", "/v2/models/wide/infer", v2_body(4), {}),
    ("explain", "/v2/models/wide/explain", v2_body(4), {}),
    ("tfserving", "/v1/models/wide:predict", json.dumps({"instances": [ROW] * 4}).encode(), {}),
    (
        "sagemaker",
        "/invocations",
        json.dumps({"instances": [ROW] * 4}).encode(),
        {"X-Amzn-SageMaker-Target-Model": "wide.tar.gz"},
    ),
    ("torchserve", "/predictions/wide", json.dumps([ROW] * 4).encode(), {}),
]


async def test_json_answers_over_the_limit_are_refused_on_every_api(
    server: LiveServer, client: httpx.AsyncClient
) -> None:
    await warm_up(client)
    for _api, path, content, headers in JSON_APIS:  # once first: each API's first-call costs
        await client.post(path, content=content, headers=headers)
    before_kib = server.rss_kib()
    for api, path, content, headers in JSON_APIS * 3:
        reply = await client.post(path, content=content, headers=headers)
        assert reply.status_code == 413, (api, reply.text[:200])
        text = reply.text
        assert f"over this server's limit of {MAX_RESPONSE_BYTES} bytes" in text, (api, text)
        assert "max_response_bytes" in text
    one_row = await client.post("/v1/models/wide:predict", json={"instances": [ROW]})
    assert one_row.status_code == 200
    assert len(one_row.json()["predictions"][0]["probabilities"]) == WIDE_CLASSES
    assert_rss_bounded(server, before_kib)


async def test_binary_answers_fit_where_json_does_not(
    server: LiveServer, client: httpx.AsyncClient
) -> None:
    await warm_up(client)
    before_kib = server.rss_kib()
    content, headers = binary_v2_body(4, named("probabilities"))
    fits = await client.post("/v2/models/wide/infer", content=content, headers=headers)
    assert fits.status_code == 200, fits.text[:200]
    header_length = int(fits.headers["inference-header-content-length"])
    assert len(fits.content) - header_length == 4 * WIDE_CLASSES * 4
    content, headers = binary_v2_body(16, named("probabilities"))
    refused = await client.post("/v2/models/wide/infer", content=content, headers=headers)
    assert refused.status_code == 413
    assert "send fewer rows" in refused.json()["error"]
    assert_rss_bounded(server, before_kib)


async def test_class_strings_over_the_limit_are_refused_before_they_are_made(
    server: LiveServer, client: httpx.AsyncClient
) -> None:
    await warm_up(client)
    before_kib = server.rss_kib()

    def top(k: int) -> list[dict[str, object]]:
        return [{"name": "probabilities", "parameters": {"classification": k}}]

    for _ in range(3):
        refused = await client.post("/v2/models/wide/infer", content=v2_body(1, top(WIDE_CLASSES)))
        assert refused.status_code == 413, refused.text[:200]
        assert "fewer outputs or classes" in refused.json()["error"]
    fits = await client.post("/v2/models/wide/infer", content=v2_body(1, top(3)))
    assert fits.status_code == 200
    assert fits.json()["outputs"][0]["shape"] == [1, 3]
    assert_rss_bounded(server, before_kib)


async def test_grpc_answers_over_the_limit_are_refused(
    server: LiveServer, stub: pb_grpc.GRPCInferenceServiceStub
) -> None:
    metadata = (("authorization", f"Bearer {server.token}"),)
    fits = await stub.ModelInfer(grpc_request("wide", 4, raw=True), metadata=metadata)
    assert len(fits.raw_output_contents[0]) == 4 * WIDE_CLASSES * 4
    before_kib = server.rss_kib()
    for raw in (False, True):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.ModelInfer(grpc_request("wide", 16, raw=raw), metadata=metadata)
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "max_response_bytes" in (refused.value.details() or "")
    too_large = grpc_request("wide", 16)
    answers = [
        answer
        async for answer in stub.ModelStreamInfer(
            iter([too_large, grpc_request("wide", 1)]), metadata=metadata
        )
    ]
    errors = {a.infer_response.id: a.error_message for a in answers}
    assert "max_response_bytes" in errors["wide-16"]
    assert errors["wide-1"] == ""
    assert_rss_bounded(server, before_kib)


@pytest.mark.slow
async def test_a_stream_that_is_not_read_does_not_pile_up_answers(
    server: LiveServer, stub: pb_grpc.GRPCInferenceServiceStub
) -> None:
    """300 requests for 256 KiB answers each, and the client reads none of them for a while:
    the server stops reading the stream instead of holding 75 MB of answers."""
    metadata = (("authorization", f"Bearer {server.token}"),)
    await stub.ModelInfer(grpc_request("wide", 1, raw=True), metadata=metadata)
    before_kib = server.rss_kib()
    call = stub.ModelStreamInfer(metadata=metadata)

    async def send() -> None:
        for _ in range(300):
            await call.write(grpc_request("wide", 1, raw=True))
        await call.done_writing()

    writer = asyncio.create_task(send())
    for _ in range(25):  # five seconds without reading: plenty for the server to pile up
        await asyncio.sleep(0.2)
        assert_rss_bounded(server, before_kib)
    answers = 0
    while (answer := await call.read()) is not grpc.aio.EOF:
        assert answer.error_message == ""
        answers += 1
    await writer
    assert answers == 300
