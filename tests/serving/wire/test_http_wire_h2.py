"""The REST server over TLS and over HTTP/2, whatever HTTP server runs it: HTTPS with HTTP/1.1,
HTTP/2 chosen by ALPN, and HTTP/2 over cleartext with prior knowledge (h2c). Infer and metadata
answer the same over each as over plain HTTP/1.1, and many streams on one HTTP/2 connection
are each answered right."""

from __future__ import annotations

import asyncio
import ssl

import httpx
import orjson
import pytest
from certificates import CertificateSet
from wire_helpers import INFER, LIMIT_S, METADATA, ROWS, LiveServer, infer_body

pytestmark = pytest.mark.timeout(60)  # every wait inside is bounded too (LIMIT_S)

GROWTH_MIB = 32
STREAMS = 16  # concurrent requests on one HTTP/2 connection


def verifying(certs: CertificateSet) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(certs.ca_cert))


async def answers(client: httpx.AsyncClient, server: LiveServer) -> tuple[object, object]:
    """The JSON documents of an infer and a metadata request, checked to be 200 over the
    protocol the client was told to use."""
    infer = await client.post(INFER, content=infer_body(), headers=server.auth())
    metadata = await client.get(METADATA, headers=server.auth())
    for reply in (infer, metadata):
        assert reply.status_code == 200, reply.text
    return orjson.loads(infer.content), orjson.loads(metadata.content)


async def http1_answers(
    server: LiveServer, verify: ssl.SSLContext | bool = True
) -> tuple[object, object]:
    """`answers` over HTTP/1.1."""
    async with httpx.AsyncClient(base_url=server.url, verify=verify, timeout=LIMIT_S) as client:
        found = await answers(client, server)
        reply = await client.get(METADATA, headers=server.auth())
    assert reply.http_version == "HTTP/1.1"
    return found


async def test_https_serves_http_1_1(
    tls_wire_server: LiveServer, wire_certificates: CertificateSet
) -> None:
    verify = verifying(wire_certificates)
    with tls_wire_server.memory_bound(GROWTH_MIB):
        infer, metadata = await http1_answers(tls_wire_server, verify)
    assert tls_wire_server.url.startswith("https://")
    assert isinstance(infer, dict)
    assert [out["name"] for out in infer["outputs"]] == ["probabilities", "label"]
    assert isinstance(metadata, dict)
    assert metadata["name"] == "iris"


@pytest.mark.parametrize("tls", [pytest.param(True, id="tls-alpn"), pytest.param(False, id="h2c")])
async def test_http_2_answers_as_http_1_1_does(
    tls: bool,
    wire_server: LiveServer,
    tls_wire_server: LiveServer,
    wire_certificates: CertificateSet,
) -> None:
    """Over TLS the client offers h2 and http/1.1 by ALPN and the server must pick h2; over
    cleartext the client starts with the HTTP/2 preface (prior knowledge)."""
    server = tls_wire_server if tls else wire_server
    verify: ssl.SSLContext | bool = verifying(wire_certificates) if tls else True
    expected = await http1_answers(server, verify)
    with server.memory_bound(GROWTH_MIB):
        async with httpx.AsyncClient(
            base_url=server.url, http1=tls, http2=True, verify=verify, timeout=LIMIT_S
        ) as client:
            found = await answers(client, server)
            reply = await client.get(METADATA, headers=server.auth())
    assert reply.http_version == "HTTP/2"
    assert found == expected


async def test_many_streams_on_one_http_2_connection_are_each_answered(
    tls_wire_server: LiveServer, wire_certificates: CertificateSet
) -> None:
    server = tls_wire_server
    bodies = [infer_body([[float(i), *ROWS[0][1:]]]) for i in range(STREAMS)]
    async with httpx.AsyncClient(
        base_url=server.url, http2=True, verify=verifying(wire_certificates), timeout=LIMIT_S
    ) as client:
        one_by_one = [await client.post(INFER, content=b, headers=server.auth()) for b in bodies]
        with server.memory_bound(GROWTH_MIB):
            together = await asyncio.gather(
                *(client.post(INFER, content=b, headers=server.auth()) for b in bodies)
            )
    assert {reply.http_version for reply in together} == {"HTTP/2"}
    assert [reply.status_code for reply in together] == [200] * STREAMS
    assert [r.json()["outputs"] for r in together] == [r.json()["outputs"] for r in one_by_one]
