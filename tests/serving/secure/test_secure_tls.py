"""HTTPS and gRPC over TLS from a throwaway CA, with and without client certificates (mTLS)."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator

import grpc
import httpx
import pytest
from certificates import CertificateSet
from secure_helpers import (
    INFER_BODY,
    Keys,
    Served,
    grpc_infer_request,
    guard_for,
    start_served,
    stop_served,
)

from maas.config import SecuritySettings
from maas.errors import InvalidInput
from maas.protocol.proto import grpc_service_pb2 as pb
from maas.protocol.proto import grpc_service_pb2_grpc as pb_grpc
from maas.registry.store import Registry
from maas.security.tls import TlsConfig
from maas.serving.protection import Protection


def client_context(certs: CertificateSet, *, with_client_cert: bool) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(certs.ca_cert))
    if with_client_cert:
        context.load_cert_chain(certs.client_cert, certs.client_key)
    return context


def channel_credentials(
    certs: CertificateSet, *, with_client_cert: bool
) -> grpc.ChannelCredentials:
    if not with_client_cert:
        return grpc.ssl_channel_credentials(root_certificates=certs.ca_cert.read_bytes())
    return grpc.ssl_channel_credentials(
        root_certificates=certs.ca_cert.read_bytes(),
        private_key=certs.client_key.read_bytes(),
        certificate_chain=certs.client_cert.read_bytes(),
    )


@pytest.fixture
async def tls_served(
    secure_registry: Registry, keys: Keys, certificates: CertificateSet
) -> AsyncIterator[Served]:
    tls = TlsConfig(certificates.server_cert, certificates.server_key)
    served = await start_served(secure_registry, Protection(guard_for(secure_registry), tls))
    yield served
    await stop_served(served)


@pytest.fixture
async def mtls_served(
    secure_registry: Registry, keys: Keys, certificates: CertificateSet
) -> AsyncIterator[Served]:
    tls = TlsConfig(certificates.server_cert, certificates.server_key, certificates.ca_cert)
    served = await start_served(secure_registry, Protection(guard_for(secure_registry), tls))
    yield served
    await stop_served(served)


async def test_https_and_grpc_over_tls(
    tls_served: Served, keys: Keys, certificates: CertificateSet
) -> None:
    assert tls_served.http_url.startswith("https://")
    verify = client_context(certificates, with_client_cert=False)
    async with httpx.AsyncClient(base_url=tls_served.http_url, verify=verify) as client:
        reply = await client.post(
            "/v2/models/digits/infer",
            json=INFER_BODY,
            headers={"Authorization": keys.bearer("digits")},
        )
        anonymous = await client.post("/v2/models/digits/infer", json=INFER_BODY)
    assert reply.status_code == 200
    assert reply.json()["model_name"] == "digits"
    assert anonymous.status_code == 401  # TLS does not replace keys
    creds = channel_credentials(certificates, with_client_cert=False)
    async with grpc.aio.secure_channel(tls_served.grpc_address, creds) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        answer = await stub.ModelInfer(
            grpc_infer_request("digits"), metadata=(("authorization", keys.bearer("digits")),)
        )
    assert answer.model_name == "digits"


async def test_a_client_that_does_not_trust_the_ca_is_refused(
    tls_served: Served, certificates: CertificateSet
) -> None:
    wrong = ssl.create_default_context(cafile=str(certificates.other_ca_cert))
    async with httpx.AsyncClient(base_url=tls_served.http_url, verify=wrong) as client:
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await client.get("/v2/health/live")
    plain = httpx.AsyncClient(base_url=tls_served.http_url.replace("https", "http"))
    async with plain:
        with pytest.raises(httpx.TransportError):
            await plain.get("/v2/health/live")  # plain HTTP on the TLS port gets nowhere


async def test_mtls_with_a_client_certificate(
    mtls_served: Served, keys: Keys, certificates: CertificateSet
) -> None:
    verify = client_context(certificates, with_client_cert=True)
    async with httpx.AsyncClient(base_url=mtls_served.http_url, verify=verify) as client:
        reply = await client.post(
            "/v2/models/digits/infer",
            json=INFER_BODY,
            headers={"Authorization": keys.bearer("digits")},
        )
    assert reply.status_code == 200
    creds = channel_credentials(certificates, with_client_cert=True)
    async with grpc.aio.secure_channel(mtls_served.grpc_address, creds) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        live = await stub.ServerLive(pb.ServerLiveRequest())
    assert live.live


async def test_mtls_without_a_client_certificate_fails_the_handshake(
    mtls_served: Served, certificates: CertificateSet
) -> None:
    verify = client_context(certificates, with_client_cert=False)
    async with httpx.AsyncClient(base_url=mtls_served.http_url, verify=verify) as client:
        # TLS 1.2 fails the handshake itself; under TLS 1.3 the server's "certificate required"
        # alert arrives on the first read, which httpx does not wrap.
        with pytest.raises((httpx.TransportError, ssl.SSLError)):
            await client.get("/v2/health/live")
    creds = channel_credentials(certificates, with_client_cert=False)
    async with grpc.aio.secure_channel(mtls_served.grpc_address, creds) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.ServerLive(pb.ServerLiveRequest(), timeout=5)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


def test_tls_settings_are_checked_at_start(certificates: CertificateSet) -> None:
    assert TlsConfig.from_settings(SecuritySettings()) is None
    config = TlsConfig.from_settings(
        SecuritySettings(
            tls_cert_file=certificates.server_cert,
            tls_key_file=certificates.server_key,
            tls_client_ca_file=certificates.ca_cert,
        )
    )
    assert config is not None
    assert config.requires_client_cert
    assert config.server_context().verify_mode == ssl.CERT_REQUIRED
    with pytest.raises(InvalidInput, match="both --tls-cert and --tls-key"):
        TlsConfig.from_settings(SecuritySettings(tls_cert_file=certificates.server_cert))
    with pytest.raises(InvalidInput, match="needs a server certificate"):
        TlsConfig.from_settings(SecuritySettings(tls_client_ca_file=certificates.ca_cert))
    with pytest.raises(InvalidInput, match="cannot use TLS certificate"):
        TlsConfig.from_settings(  # a key that is not the certificate's
            SecuritySettings(
                tls_cert_file=certificates.server_cert, tls_key_file=certificates.client_key
            )
        )
