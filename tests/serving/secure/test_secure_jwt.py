"""A JWT from an identity provider on real servers: its scopes decide, over REST and gRPC."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import grpc
import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm
from secure_helpers import INFER_BODY, grpc_infer_request, start_served, stop_served

from maas.config import SecuritySettings
from maas.protocol.proto import grpc_service_pb2_grpc as pb_grpc
from maas.registry.store import Registry
from maas.security.guard import Guard
from maas.serving.protection import Protection

ISSUER = "https://id.example.test"
AUDIENCE = "maas"


def token(key: ec.EllipticCurvePrivateKey, **claims: Any) -> str:
    body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "svc-web", "exp": int(time.time()) + 600}
    body.update(claims)
    return jwt.encode(body, key, algorithm="ES256", headers={"kid": "k1"})


async def test_a_jwt_scoped_to_digits(secure_registry: Registry, tmp_path: Path) -> None:
    idp = ec.generate_private_key(ec.SECP256R1())
    jwk: dict[str, Any] = json.loads(ECAlgorithm.to_jwk(idp.public_key()))
    jwk.update(kid="k1", alg="ES256", use="sig")
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [jwk]}))
    settings = SecuritySettings(jwt_jwks_file=jwks, jwt_issuer=ISSUER, jwt_audience=AUDIENCE)
    guard = Guard.from_settings(secure_registry, settings)
    served = await start_served(secure_registry, Protection(guard=guard))
    good = f"Bearer {token(idp, scope='infer:digits openid')}"
    expired = f"Bearer {token(idp, scope='infer:digits', exp=int(time.time()) - 60)}"
    try:
        async with httpx.AsyncClient(base_url=served.http_url, timeout=10) as client:
            statuses = [
                (
                    await client.post(path, json=INFER_BODY, headers={"Authorization": who})
                ).status_code
                for path, who in (
                    ("/v2/models/digits/infer", good),
                    ("/v2/models/iris/infer", good),
                    ("/v2/models/digits/infer", expired),
                )
            ]
        async with grpc.aio.insecure_channel(served.grpc_address) as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            answer = await stub.ModelInfer(
                grpc_infer_request("digits"), metadata=(("authorization", good),)
            )
            try:
                await stub.ModelInfer(
                    grpc_infer_request("iris"), metadata=(("authorization", good),)
                )
                other = grpc.StatusCode.OK
            except grpc.aio.AioRpcError as err:
                other = err.code()
    finally:
        await stop_served(served)
    assert statuses == [200, 403, 401]
    assert answer.model_name == "digits"
    assert other == grpc.StatusCode.PERMISSION_DENIED
