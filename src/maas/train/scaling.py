"""Per-feature affine scaling fitted on the training split and saved with the model.

`transform(x) = (x - offset) / scale`. The statistics are always per feature, images included:
each pixel position gets its own offset and scale. That is simple, exact to reproduce at serving
time, and works well for the small aligned images maas trains on; a pixel that never changes in the
training split (the blank border of the digits) keeps scale 1 instead of dividing by zero.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from maas.errors import InvalidInput, ShapeMismatch

log = logging.getLogger(__name__)

SCALING_KINDS: Final = ("standard", "minmax", "none")
MIN_SCALE: Final = 1e-12  # a spread below this is a constant feature; its scale becomes 1


@dataclass(frozen=True, eq=False)
class Scaler:
    """A per-feature affine map: `(x - offset) / scale`, fitted on the training split only.

    Attributes:
        offset: float32 [F], subtracted from each feature.
        scale: float32 [F], never zero (constant features get 1).
        kind: "standard" (mean, standard deviation), "minmax" (min, max - min) or "none".
    """

    offset: np.ndarray
    scale: np.ndarray
    kind: str

    @property
    def num_features(self) -> int:
        """How many features the scaler expects in the last axis."""
        return int(self.offset.shape[0])

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Scale rows `x` ([..., F]) and return float32."""
        if x.ndim == 0 or x.shape[-1] != self.num_features:
            raise ShapeMismatch(
                f"scaler expects {self.num_features} features per row, got shape {list(x.shape)}"
            )
        out: np.ndarray = (np.asarray(x, dtype=np.float32) - self.offset) / self.scale
        return out.astype(np.float32, copy=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form; float32 values survive the trip through Python floats exactly."""
        return {
            "kind": self.kind,
            "offset": [float(v) for v in self.offset],
            "scale": [float(v) for v in self.scale],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Scaler:
        """Rebuild a scaler saved by `to_dict`; raise InvalidInput if it is malformed."""
        try:
            kind = data["kind"]
            offset = np.asarray(data["offset"], dtype=np.float32)
            scale = np.asarray(data["scale"], dtype=np.float32)
        except (KeyError, TypeError, ValueError) as err:
            raise InvalidInput(f"scaler: malformed saved scaler ({err})") from err
        if kind not in SCALING_KINDS:
            raise InvalidInput(
                f"scaler: unknown kind {kind!r}; use one of {', '.join(SCALING_KINDS)}"
            )
        if offset.ndim != 1 or offset.shape != scale.shape:
            raise InvalidInput(
                f"scaler: offset and scale must be lists of equal length, "
                f"got {list(offset.shape)} and {list(scale.shape)}"
            )
        if not (np.all(np.isfinite(scale)) and np.all(scale != 0) and np.all(np.isfinite(offset))):
            raise InvalidInput("scaler: offset and scale must be finite and scale never 0")
        return cls(offset=offset, scale=scale, kind=kind)


def fit_scaler(train_x: np.ndarray, kind: str) -> Scaler:
    """Fit a scaler on the training rows `train_x` ([N, F]).

    Args:
        train_x: the training split only, so nothing leaks from validation or test rows.
        kind: "standard", "minmax" or "none".

    Returns:
        The fitted Scaler (float32 statistics, computed in float64).
    """
    if kind not in SCALING_KINDS:
        raise InvalidInput(f"scaling: unknown kind {kind!r}; use one of {', '.join(SCALING_KINDS)}")
    if train_x.ndim != 2:
        raise ShapeMismatch(f"scaling: expects rows [N, F], got shape {list(train_x.shape)}")
    num_features = train_x.shape[1]
    if kind == "none":
        return Scaler(
            offset=np.zeros(num_features, dtype=np.float32),
            scale=np.ones(num_features, dtype=np.float32),
            kind=kind,
        )
    if train_x.shape[0] == 0:
        raise InvalidInput("scaling: cannot fit on an empty training split")
    x = train_x.astype(np.float64)
    if kind == "standard":
        offset = x.mean(axis=0)
        spread = x.std(axis=0)
    else:
        offset = x.min(axis=0)
        spread = x.max(axis=0) - offset
    constant = ~(spread > MIN_SCALE)
    spread[constant] = 1.0
    if constant.any():
        log.debug("scaling.constant_features", extra={"count": int(constant.sum())})
    return Scaler(offset=offset.astype(np.float32), scale=spread.astype(np.float32), kind=kind)
