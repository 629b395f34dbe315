"""`POST /v2/models/{m}[/versions/{v}]/explain`: occlusion attributions over REST.

The body is an inference request (JSON, or JSON with the binary tensor data extension); the
answer is an inference response with two more outputs, `attributions` and `target`
(see `maas.serving.explain`).
"""

from __future__ import annotations

from maas.errors import InvalidInput, MaasError, ModelNotFound
from maas.protocol.http import HEADER_LENGTH, decode_request, encode_response, wants_binary
from maas.serving.dataplane import DataPlane
from maas.serving.explain import Explainer
from maas.serving.rest.handlers import MODEL_VERSION_HEADER, HttpRequest, Reply


class ExplainHandlers:
    """The explain endpoint over one data plane."""

    def __init__(self, data_plane: DataPlane) -> None:
        self._dp = data_plane
        self._explainer = Explainer(data_plane)

    async def explain(self, request: HttpRequest) -> Reply:
        """Decode the inference request, explain it, encode the response."""
        model = request.model
        if not model:
            raise ModelNotFound("no model named in the path")
        try:
            header_length = header_length_of(request.headers)
            infer_request = decode_request(request.body, header_length, model, request.version)
        except MaasError as err:
            self._dp.count_rejected(model, request.version, "rest", err.code)
            raise
        response = await self._explainer.explain(infer_request, protocol="rest")
        encoded = encode_response(response, wants_binary(infer_request))
        answered = ((MODEL_VERSION_HEADER, response.model_version.encode()),)
        if encoded.header_length is None:
            return Reply(200, encoded.body, headers=answered)
        return Reply(
            200,
            encoded.body,
            b"application/octet-stream",
            ((HEADER_LENGTH.encode(), str(encoded.header_length).encode()), *answered),
        )


def header_length_of(headers: dict[bytes, bytes]) -> int | None:
    """The `Inference-Header-Content-Length` of a binary request, None for plain JSON.

    Raises:
        InvalidInput: the header is not a number.
    """
    value = headers.get(HEADER_LENGTH.encode())
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise InvalidInput(f"{HEADER_LENGTH} {value!r} is not a number") from None
