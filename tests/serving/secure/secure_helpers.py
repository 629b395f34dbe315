"""Helpers for the secured-server tests: servers behind a guard, keys, requests, and a throwaway
certificate authority with its certificates."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from prometheus_client import CollectorRegistry

from maas.protocol.proto import grpc_service_pb2 as pb
from maas.registry.store import Registry
from maas.security.auth import Authenticator
from maas.security.guard import Guard
from maas.security.keys import KeyStore
from maas.serving.dataplane import DataPlane
from maas.serving.manager import ModelManager
from maas.serving.options import ServingConfig
from maas.serving.protection import Protection
from maas.serving.server import Server, build_data_plane

KEY_POLL_S = 0.2  # servers reload keys this often in these tests


ROWS = np.array([[0.5, -1.0, 2.0, 0.25], [1.0, 1.0, -1.0, 0.0]], dtype=np.float32)
INFER_BODY = {
    "inputs": [
        {"name": "input", "datatype": "FP32", "shape": [2, 4], "data": ROWS.ravel().tolist()}
    ]
}


@dataclass
class Keys:
    """Tokens of the test keys, by name."""

    tokens: dict[str, str] = field(default_factory=dict)

    def bearer(self, name: str) -> str:
        return f"Bearer {self.tokens[name]}"


@dataclass
class Served:
    """A running secured server."""

    server: Server
    data_plane: DataPlane
    manager: ModelManager
    registry: Registry
    scheme: str = "http"

    @property
    def http_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.server.http_port}"

    @property
    def grpc_address(self) -> str:
        return f"127.0.0.1:{self.server.grpc_port}"


async def start_served(
    registry: Registry, protection: Protection, request_timeout_s: float = 10.0
) -> Served:
    """Serve every model of `registry` behind `protection`, with a manager following it."""
    config = ServingConfig(poll_interval_s=0, request_timeout_s=request_timeout_s)
    data_plane = build_data_plane(registry, None, config, CollectorRegistry())
    manager = ModelManager(registry, data_plane)
    data_plane.control = manager
    server = Server(data_plane, host="127.0.0.1", http_port=0, grpc_port=0, protection=protection)
    await server.start()
    await manager.start()
    return Served(server, data_plane, manager, registry, protection.scheme)


async def stop_served(served: Served) -> None:
    await served.manager.stop()
    await served.server.stop(1.0)
    served.data_plane.close()


def guard_for(registry: Registry) -> Guard:
    """A guard over `registry`'s keys that reloads them every `KEY_POLL_S`."""
    return Guard(Authenticator(KeyStore(registry), poll_interval_s=KEY_POLL_S))


def grpc_infer_request(model: str) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name=model)
    tensor = request.inputs.add(name="input", datatype="FP32", shape=list(ROWS.shape))
    tensor.contents.fp32_contents.extend(ROWS.ravel().tolist())
    return request


@dataclass(frozen=True)
class CertificateSet:
    """PEM files: the CA, the server's certificate and key, a client's certificate and key."""

    ca_cert: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca_cert: Path  # a CA that signed nothing here


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def _new_ca(common_name: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _issue(
    ca: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    common_name: str,
    *,
    is_server: bool,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    usage = ExtendedKeyUsageOID.SERVER_AUTH if is_server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if is_server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    return builder.sign(ca_key, hashes.SHA256()), key


def make_certificates(folder: Path) -> CertificateSet:
    """Write a CA, a server certificate (localhost, 127.0.0.1) and a client certificate."""
    ca, ca_key = _new_ca("maas test CA")
    other_ca, _ = _new_ca("unrelated CA")
    server, server_key = _issue(ca, ca_key, "localhost", is_server=True)
    client, client_key = _issue(ca, ca_key, "test client", is_server=False)
    pem = serialization.Encoding.PEM
    files = CertificateSet(
        ca_cert=folder / "ca.pem",
        server_cert=folder / "server.pem",
        server_key=folder / "server.key",
        client_cert=folder / "client.pem",
        client_key=folder / "client.key",
        other_ca_cert=folder / "other-ca.pem",
    )
    files.ca_cert.write_bytes(ca.public_bytes(pem))
    files.other_ca_cert.write_bytes(other_ca.public_bytes(pem))
    files.server_cert.write_bytes(server.public_bytes(pem))
    files.client_cert.write_bytes(client.public_bytes(pem))
    _write_key(server_key, files.server_key)
    _write_key(client_key, files.client_key)
    return files
