"""`POST /v2/models/{m}[/versions/{v}]/explain`: occlusion attributions over REST.

The body is an inference request (JSON, or JSON with the binary tensor data extension); the
answer is an inference response with two more outputs, `attributions` and `target`
(see `maas.serving.explain`).
"""

from __future__ import annotations

from maas.serving.dataplane import DataPlane
from maas.serving.explain import Explainer
from maas.serving.rest.handlers import HttpRequest, Reply, answer_inference


class ExplainHandlers:
    """The explain endpoint over one data plane."""

    def __init__(self, data_plane: DataPlane) -> None:
        self._dp = data_plane
        self._explainer = Explainer(data_plane)

    async def explain(self, request: HttpRequest) -> Reply:
        """Decode the inference request, explain it, encode the response."""
        return await answer_inference(self._dp, request, self._explainer.explain)
