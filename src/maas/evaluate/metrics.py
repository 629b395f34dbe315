"""Classification quality from predicted probabilities: accuracy, per-class scores, calibration.

numpy only. Calibration is the expected calibration error (ECE) over equal-width confidence bins
and the reliability table behind it: in a calibrated model, predictions made with 80% confidence
are right 80% of the time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from maas.errors import ShapeMismatch

CALIBRATION_BINS = 10


@dataclass(frozen=True)
class ClassScores:
    """Precision, recall, F1 and support of one class."""

    label: str
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class ReliabilityBin:
    """One confidence bin: its range, rows in it, their mean confidence and their accuracy."""

    lower: float
    upper: float
    count: int
    confidence: float
    accuracy: float


@dataclass(frozen=True)
class ClassificationReport:
    """Everything measured from probabilities and true classes.

    Attributes:
        accuracy: share of rows whose most probable class is the true one.
        rows: rows evaluated.
        per_class: precision/recall/F1/support per class, in label order.
        confusion: counts [true class, predicted class].
        ece: expected calibration error (0 is perfectly calibrated).
        reliability: the confidence bins behind the ECE.
        log_loss: mean negative log probability of the true class.
    """

    accuracy: float
    rows: int
    per_class: tuple[ClassScores, ...]
    confusion: np.ndarray
    ece: float
    reliability: tuple[ReliabilityBin, ...]
    log_loss: float

    @property
    def macro_f1(self) -> float:
        """Unweighted mean F1 over classes."""
        return float(np.mean([c.f1 for c in self.per_class])) if self.per_class else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "accuracy": self.accuracy,
            "rows": self.rows,
            "macro_f1": self.macro_f1,
            "log_loss": self.log_loss,
            "ece": self.ece,
            "per_class": [c.__dict__ for c in self.per_class],
            "confusion_matrix": self.confusion.tolist(),
            "reliability": [b.__dict__ for b in self.reliability],
        }


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts [true, predicted] as int64 [K, K]."""
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (y_true.astype(np.int64), y_pred.astype(np.int64)), 1)
    return matrix


def per_class_scores(confusion: np.ndarray, labels: Sequence[str]) -> tuple[ClassScores, ...]:
    """Precision, recall and F1 of every class from a confusion matrix (0 where undefined)."""
    true_pos = np.diag(confusion).astype(np.float64)
    predicted = confusion.sum(axis=0).astype(np.float64)
    actual = confusion.sum(axis=1).astype(np.float64)
    precision = np.divide(true_pos, predicted, out=np.zeros_like(true_pos), where=predicted > 0)
    recall = np.divide(true_pos, actual, out=np.zeros_like(true_pos), where=actual > 0)
    denominator = precision + recall
    f1 = np.divide(
        2 * precision * recall, denominator, out=np.zeros_like(true_pos), where=denominator > 0
    )
    return tuple(
        ClassScores(
            str(labels[k]), float(precision[k]), float(recall[k]), float(f1[k]), int(actual[k])
        )
        for k in range(len(true_pos))
    )


def reliability_bins(
    confidence: np.ndarray, correct: np.ndarray, n_bins: int = CALIBRATION_BINS
) -> tuple[ReliabilityBin, ...]:
    """Equal-width confidence bins over [0, 1]; a confidence of exactly 1 falls in the last."""
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    index = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, n_bins - 1)
    bins = []
    for b in range(n_bins):
        member = index == b
        count = int(member.sum())
        bins.append(
            ReliabilityBin(
                lower=float(edges[b]),
                upper=float(edges[b + 1]),
                count=count,
                confidence=float(confidence[member].mean()) if count else 0.0,
                accuracy=float(correct[member].mean()) if count else 0.0,
            )
        )
    return tuple(bins)


def expected_calibration_error(bins: Sequence[ReliabilityBin]) -> float:
    """Row-weighted mean |accuracy - confidence| over the bins."""
    total = sum(b.count for b in bins)
    if total == 0:
        return 0.0
    return float(sum(b.count * abs(b.accuracy - b.confidence) for b in bins) / total)


def classification_report(
    probabilities: np.ndarray, y_true: np.ndarray, labels: Sequence[str]
) -> ClassificationReport:
    """Measure probabilities [N, K] against true class indices [N].

    Raises:
        ShapeMismatch: the shapes disagree with each other or with the labels.
    """
    probs = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(y_true, dtype=np.int64)
    if probs.ndim != 2 or probs.shape[0] != y.shape[0]:
        raise ShapeMismatch(
            f"probabilities {list(probs.shape)} do not match {y.shape[0]} true classes"
        )
    n_classes = probs.shape[1]
    if labels and len(labels) != n_classes:
        raise ShapeMismatch(f"{len(labels)} labels for {n_classes} probability columns")
    names = list(labels) or [str(k) for k in range(n_classes)]
    predicted = probs.argmax(axis=1)
    correct = predicted == y
    confusion = confusion_matrix(y, predicted, n_classes)
    bins = reliability_bins(probs.max(axis=1), correct)
    true_prob = probs[np.arange(len(y)), y] if len(y) else np.zeros(0)
    return ClassificationReport(
        accuracy=float(correct.mean()) if len(y) else 0.0,
        rows=len(y),
        per_class=per_class_scores(confusion, names),
        confusion=confusion,
        ece=expected_calibration_error(bins),
        reliability=bins,
        log_loss=float(-np.mean(np.log(np.clip(true_prob, 1e-12, 1.0)))) if len(y) else 0.0,
    )
