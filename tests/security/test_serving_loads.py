"""What a server loads through the registry: encrypted artifacts with the key, signed versions only
when signatures are required; otherwise a clear error and nothing loaded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from certificates import write_ec_keypair
from onnx_models import Classifier
from security_helpers import new_cipher

from maas.errors import EncryptionError, IntegrityError
from maas.protocol.types import InferRequest, InferTensor
from maas.registry import Registry
from maas.security.signing import SignatureCheck, sign_version
from maas.serving.context import RequestContext
from maas.serving.server import build_data_plane


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'registry.db'}"


async def infer_probabilities(registry: Registry, x: np.ndarray) -> np.ndarray:
    plane = build_data_plane(registry, ["digits"])
    try:
        request = InferRequest("digits", None, (InferTensor("input", "FP32", tuple(x.shape), x),))
        response = await plane.infer(request, RequestContext.starting_now("t", "rest", 30.0))
    finally:
        plane.close()
    (probabilities,) = [t.data for t in response.outputs if t.name == "probabilities"]
    return np.asarray(probabilities)


async def test_an_encrypted_registry_serves_with_its_key(
    url: str, artifacts_dir: Path, classifier: Classifier
) -> None:
    cipher = new_cipher()
    with Registry(url, artifacts_dir, cipher=cipher) as reg:
        reg.register("digits", classifier.model_bytes, signature=classifier.signature)
        x = np.arange(8, dtype=np.float32).reshape(2, 4) / 8
        got = await infer_probabilities(reg, x)
    np.testing.assert_allclose(got, classifier.expected(x), rtol=1e-5, atol=1e-6)
    with (
        Registry(url, artifacts_dir) as no_key,
        pytest.raises(EncryptionError, match=f"encrypted with key {cipher.key_id}"),
    ):
        build_data_plane(no_key, ["digits"])


@pytest.mark.slow  # model_signing takes about 2 s to import
async def test_required_signatures_gate_loading(
    url: str, artifacts_dir: Path, classifier: Classifier, tmp_path: Path
) -> None:
    private, public = write_ec_keypair(tmp_path, "k")
    with Registry(url, artifacts_dir) as reg:
        mv = reg.register("digits", classifier.model_bytes, signature=classifier.signature)
    with (
        Registry(url, artifacts_dir, signature_verifier=SignatureCheck(public)) as strict,
        pytest.raises(IntegrityError, match="digits@1 is unsigned"),
    ):
        build_data_plane(strict, ["digits"])
    with Registry(url, artifacts_dir, signature_verifier=SignatureCheck(public)) as strict:
        sign_version(strict, mv, private)
        x = np.ones((1, 4), dtype=np.float32)
        got = await infer_probabilities(strict, x)
    np.testing.assert_allclose(got, classifier.expected(x), rtol=1e-5, atol=1e-6)
