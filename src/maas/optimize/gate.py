"""The accuracy gate: an optimized model may cost at most so many points of test accuracy."""

from __future__ import annotations

from dataclasses import dataclass

from maas.errors import ErrorCode, MaasError

QUANTIZE_MAX_DROP_POINTS = 0.5  # int8 should be nearly free; more usually means a bad layer
PRUNE_MAX_DROP_POINTS = 2.0  # pruning half the units is a real change; fine-tuning recovers most


class AccuracyGateFailed(MaasError):
    """An optimized model lost more accuracy than allowed and was not registered.

    Not a client mistake (the request was valid; the result is not good enough), so it is kept
    out of the CLI's usage-error codes and `maas optimize` exits 1.
    """

    code = ErrorCode.INTERNAL


@dataclass(frozen=True)
class GateResult:
    """Both accuracies (fractions) and the allowed drop (points, i.e. percent)."""

    parent_accuracy: float
    candidate_accuracy: float
    max_drop_points: float

    @property
    def drop_points(self) -> float:
        """Accuracy lost, in points (negative when the candidate is better)."""
        return (self.parent_accuracy - self.candidate_accuracy) * 100.0

    @property
    def passed(self) -> bool:
        """True when the drop is within the allowed points (a tiny float slack included)."""
        return self.drop_points <= self.max_drop_points + 1e-9

    def describe(self) -> str:
        """One line with both numbers, e.g. for a refusal."""
        return (
            f"test accuracy {self.candidate_accuracy * 100:.2f}% vs parent "
            f"{self.parent_accuracy * 100:.2f}% (drop {self.drop_points:.2f} points, "
            f"allowed {self.max_drop_points:g})"
        )

    def to_dict(self) -> dict[str, float | bool]:
        """JSON-ready form."""
        return {
            "parent_accuracy": self.parent_accuracy,
            "candidate_accuracy": self.candidate_accuracy,
            "drop_points": self.drop_points,
            "max_drop_points": self.max_drop_points,
            "passed": self.passed,
        }


def check_accuracy(
    parent_accuracy: float, candidate_accuracy: float, max_drop_points: float
) -> GateResult:
    """Compare two test accuracies (fractions in [0, 1]) against the allowed drop in points."""
    return GateResult(float(parent_accuracy), float(candidate_accuracy), float(max_drop_points))


def require_accuracy(gate: GateResult, what: str) -> None:
    """Raise AccuracyGateFailed with both numbers unless the gate passed.

    Args:
        gate: the comparison.
        what: the candidate, as the message names it (e.g. "static int8 of digits@1").
    """
    if not gate.passed:
        raise AccuracyGateFailed(
            f"accuracy gate failed: {what} has {gate.describe()}; nothing registered "
            "(raise --max-accuracy-drop to accept it)"
        )
