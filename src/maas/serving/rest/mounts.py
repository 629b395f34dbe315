"""Routes mounted next to the v2 API: management, explain, TF Serving, SageMaker, TorchServe.

`mounted_routes` gives the REST app its extra (method, path shape) -> handler entries,
`match_mounted` turns a request path into its shape, and `MOUNTED_KINDS` names each route's
endpoint kind (`security.acl.ENDPOINT_ACTIONS`) so authentication covers them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from maas.serving.dataplane import DataPlane
from maas.serving.rest.compat_sagemaker import SageMakerHandlers
from maas.serving.rest.compat_tfserving import TfServingHandlers, match_tfserving
from maas.serving.rest.compat_torchserve import TorchServeHandlers, match_torchserve
from maas.serving.rest.explain import ExplainHandlers
from maas.serving.rest.handlers import HttpRequest, Reply
from maas.serving.rest.management import ManagementHandlers, match_management

Handler = Callable[[HttpRequest], Awaitable[Reply]]
Shape = tuple[str, str | None, str | None]

# (method, path shape) -> endpoint kind, for access control.
MOUNTED_KINDS: dict[tuple[str, str], str] = {
    ("POST", "/v2/repository/index"): "repository_index",
    ("POST", "/v2/repository/models/{m}/load"): "repository_load",
    ("POST", "/v2/repository/models/{m}/unload"): "repository_unload",
    ("PUT", "/v2/models/{m}/aliases/{v}"): "management",
    ("GET", "/v2/models/{m}/route"): "management",
    ("PUT", "/v2/models/{m}/route"): "management",
    ("DELETE", "/v2/models/{m}/route"): "management",
    ("POST", "/v2/models/{m}/rollback"): "management",
    ("GET", "/v1/models/{m}"): "model_metadata",
    ("GET", "/v1/models/{m}/versions/{v}"): "model_metadata",
    ("GET", "/v1/models/{m}/metadata"): "model_metadata",
    ("GET", "/v1/models/{m}/versions/{v}/metadata"): "model_metadata",
    ("POST", "/v1/models/{m}:predict"): "tfserving_predict",
    ("POST", "/v1/models/{m}/versions/{v}:predict"): "tfserving_predict",
    ("GET", "/ping"): "sagemaker_ping",
    ("POST", "/invocations"): "sagemaker_invocations",
    ("POST", "/predictions/{m}"): "torchserve_predictions",
    ("POST", "/predictions/{m}/{v}"): "torchserve_predictions",
    ("POST", "/v2/models/{m}/explain"): "explain",
    ("POST", "/v2/models/{m}/versions/{v}/explain"): "explain",
}


def mounted_routes(data_plane: DataPlane) -> dict[tuple[str, str], Handler]:
    """The extra routes of the REST app over `data_plane`."""
    manage = ManagementHandlers(data_plane)
    tf = TfServingHandlers(data_plane)
    sm = SageMakerHandlers(data_plane)
    ts = TorchServeHandlers(data_plane)
    explain = ExplainHandlers(data_plane)
    routes: dict[tuple[str, str], Handler] = {
        ("POST", "/v2/repository/index"): manage.index,
        ("POST", "/v2/repository/models/{m}/load"): manage.load,
        ("POST", "/v2/repository/models/{m}/unload"): manage.unload,
        ("PUT", "/v2/models/{m}/aliases/{v}"): manage.set_alias,
        ("GET", "/v2/models/{m}/route"): manage.get_route,
        ("PUT", "/v2/models/{m}/route"): manage.set_route,
        ("DELETE", "/v2/models/{m}/route"): manage.clear_route,
        ("POST", "/v2/models/{m}/rollback"): manage.rollback,
        ("GET", "/v1/models/{m}"): tf.status,
        ("GET", "/v1/models/{m}/versions/{v}"): tf.status,
        ("GET", "/v1/models/{m}/metadata"): tf.metadata,
        ("GET", "/v1/models/{m}/versions/{v}/metadata"): tf.metadata,
        ("POST", "/v1/models/{m}:predict"): tf.predict,
        ("POST", "/v1/models/{m}/versions/{v}:predict"): tf.predict,
        ("GET", "/ping"): sm.ping,
        ("POST", "/invocations"): sm.invocations,
        ("POST", "/predictions/{m}"): ts.predictions,
        ("POST", "/predictions/{m}/{v}"): ts.predictions,
        ("POST", "/v2/models/{m}/explain"): explain.explain,
        ("POST", "/v2/models/{m}/versions/{v}/explain"): explain.explain,
    }
    return routes


def match_mounted(path: str) -> Shape | None:
    """The shape, model and version of a mounted path; None for any other path."""
    for match in (match_management, match_tfserving, match_torchserve):
        found = match(path)
        if found is not None:
            return found
    return None
