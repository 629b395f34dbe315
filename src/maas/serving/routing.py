"""Routing state of one served model: its weighted split, guard watches and shadow version.

`WeightedPicker` is a smooth weighted round-robin: with weights 90/10 every run of 10 picks holds
exactly 9 and 1, interleaved, so a split is exact over any number of requests and needs no random
numbers. `GuardWatch` keeps the answers of one target over a sliding window and says when they
breach the route's guard. Both are used only from the event loop thread.
"""

from __future__ import annotations

import collections
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from maas.registry.routes import RouteGuard  # the registry package is heavy to import

P99_EVERY = 8  # recompute the p99 every this many answers: sorting a window per request is waste


class WeightedPicker:
    """Smooth weighted round-robin over version names.

    Args:
        weights: (version, weight) pairs; weights of a repeated version add up.
    """

    def __init__(self, weights: Sequence[tuple[str, int]]) -> None:
        merged: dict[str, int] = {}
        for version, weight in weights:
            if weight > 0:
                merged[version] = merged.get(version, 0) + weight
        self._weights = merged
        self._current = dict.fromkeys(merged, 0)
        self._total = sum(merged.values())

    @property
    def weights(self) -> dict[str, int]:
        """Version -> weight in force (versions removed by `remove` are gone)."""
        return dict(self._weights)

    def pick(self) -> str | None:
        """The next version, or None when no version has weight left."""
        if not self._weights:
            return None
        best = ""
        best_value = -math.inf
        for version, weight in self._weights.items():
            value = self._current[version] + weight
            self._current[version] = value
            if value > best_value:
                best, best_value = version, value
        self._current[best] -= self._total
        return best

    def remove(self, version: str) -> None:
        """Stop picking `version` (a guard took it out)."""
        if self._weights.pop(version, None) is None:
            return
        self._current.pop(version, None)
        self._total = sum(self._weights.values())
        self._current = dict.fromkeys(self._weights, 0)


class GuardWatch:
    """Answers of one guarded target over a sliding window.

    Args:
        guard: the limits.
        clock: seconds, monotonic (tests may pass their own).
    """

    def __init__(self, guard: RouteGuard, clock: Callable[[], float] = time.monotonic) -> None:
        self._guard = guard
        self._clock = clock
        self._answers: collections.deque[tuple[float, bool, float]] = collections.deque()
        self._errors = 0
        self._since_p99 = 0

    def observe(self, is_error: bool, duration_ms: float) -> str | None:
        """Record one answer; return why the guard is breached, or None while it holds."""
        now = self._clock()
        self._answers.append((now, is_error, duration_ms))
        self._errors += is_error
        horizon = now - self._guard.window_s
        while self._answers and self._answers[0][0] < horizon:
            _, was_error, _ = self._answers.popleft()
            self._errors -= was_error
        count = len(self._answers)
        if count < self._guard.min_requests:
            return None
        limit = self._guard.max_error_rate
        rate = self._errors / count
        if limit is not None and rate > limit:
            return f"error rate {rate:.3f} > {limit} over {count} requests"
        self._since_p99 += 1
        if self._guard.max_p99_ms is None or self._since_p99 < P99_EVERY:
            return None
        self._since_p99 = 0
        p99 = percentile([d for _, _, d in self._answers], 0.99)
        if p99 > self._guard.max_p99_ms:
            return f"p99 {p99:.3f} ms > {self._guard.max_p99_ms} ms over {count} requests"
        return None


def percentile(values: Sequence[float], q: float) -> float:
    """The `q` quantile (0..1) by the nearest-rank method."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


@dataclass
class ModelRoute:
    """How requests without a version reach one model's loaded versions.

    Attributes:
        default: the version answering when the split is empty (or there is none).
        picker: the weighted split over loaded versions; None: always `default`.
        targets: route target (alias or number) -> the version it resolved to.
        guards: version -> its watch (non-primary targets of a guarded split).
        shadow: version that gets copies of routed requests, if any.
        key: what the route was built from; an equal key lets a new table keep this object
            (and so the picker's position and the guards' windows).
    """

    default: str
    picker: WeightedPicker | None = None
    targets: Mapping[str, str] = field(default_factory=dict)
    guards: dict[str, GuardWatch] = field(default_factory=dict)
    shadow: str | None = None
    key: tuple[object, ...] = ()

    def pick(self) -> str:
        """The version for the next request."""
        if self.picker is None:
            return self.default
        return self.picker.pick() or self.default

    def target_of(self, version: str) -> str:
        """The route target that led to `version` (the version itself if none)."""
        for target, resolved in self.targets.items():
            if resolved == version:
                return target
        return version
